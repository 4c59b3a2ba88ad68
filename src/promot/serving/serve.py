"""`promot serve RUN`: export the run (or reuse its export of the same weights), then `transformers serve` on it.

transformers' own server, not ours: its OpenAI routes (/v1/completions, /v1/chat/completions, /v1/responses) pass
`chat_template_kwargs` to the exported chat template, which is all a ProMoT model needs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from promot import rundir
from promot.errors import ConfigError
from promot.serving.export_dir import PREFIXES_FILE, Exported, export


def exported_dir(run: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Exported:
    """RUN's export at `out` (default RUN/export/): reused when it holds this run's current weights, else written."""
    from promot.rundir import read_run_info

    run_dir = Path(run)
    out = Path(out) if out is not None else run_dir / rundir.EXPORT
    record = out / PREFIXES_FILE
    if out.exists() and not overwrite and record.is_file():
        info = read_run_info(run_dir)
        saved = json.loads(record.read_text())
        if saved.get("model_fingerprint") == info.model.fingerprint:
            return Exported(out, {t: v["prefix"] for t, v in saved.get("tasks", {}).items()})
        raise ConfigError(f"{out}: an export of other weights (fingerprint); pass --overwrite to replace it")
    return export(run_dir, out, overwrite)


def serve_command(directory: Path, host: str, port: int) -> list[str]:
    """`transformers serve DIR` as a command for this Python (no reliance on PATH), with template refusals as 400s."""
    return [sys.executable, "-c", "from promot.serving.serve import transformers_serve; transformers_serve()", "serve",
            str(directory), "--host", host, "--port", str(port)]


def transformers_serve() -> None:
    """`transformers serve` (its CLI, its arguments), one handler added: a request the exported chat template
    refuses (an unknown `promot_task`, a message spelling a prompt token) gets HTTP 400 with the template's message,
    in OpenAI's error shape, where transformers serve would answer a bare 500 "Internal Server Error"."""
    from fastapi.responses import JSONResponse
    from jinja2.exceptions import TemplateError
    from transformers.cli.serving import server
    from transformers.cli.transformers import main

    build = server.build_server

    def build_server(*args, **kwargs):
        app = build(*args, **kwargs)

        @app.exception_handler(TemplateError)
        async def refused(_request, exc: TemplateError):
            return JSONResponse({"error": {"message": str(exc), "type": "invalid_request_error", "param": None,
                                           "code": None}}, status_code=400)

        return app

    server.build_server = build_server
    main()


def serve(run: str | Path, out: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
          overwrite: bool = False) -> int:
    """Export, then run `transformers serve` in the foreground until it stops; returns its exit code."""
    import importlib.util
    import subprocess

    missing = [m for m in ("fastapi", "uvicorn", "openai") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"promot serve needs transformers' serving extra ({', '.join(missing)} missing): "
                          "pip install 'promot[serve]'")
    done = exported_dir(run, out, overwrite)
    for task, prefix in done.tasks.items():
        print(f"task {task}: prefix {prefix}  (chat: chat_template_kwargs={{\"promot_task\": \"{task}\"}})")
    print(f"serving {done.path} on http://{host}:{port}/v1", flush=True)
    try:
        return subprocess.call(serve_command(done.path, host, port))
    except KeyboardInterrupt:
        return 130
