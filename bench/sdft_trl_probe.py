"""Can TRL's SDFTTrainer train the world model on its True/False target on 2 CPU cores? Its time per step, beside
promot's `sdft` (docs/RESULTS.md: the rivals of 2025-26).

    python bench/sdft_trl_probe.py 100
"""
import json, random, sys, time
import promot.world  # registers world-tiny
from promot.models.loading import load_model
from datasets import Dataset

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
loaded = load_model("world-tiny")
model, tok = loaded.model, loaded.tokenizer
D = "src/promot/evaluate/suites/world/data/"
rows = [json.loads(l) for l in open(D + "true_false.train.jsonl")]
rng = random.Random(0)
data = []
for i, r in enumerate(rows[:512]):
    d = rows[(i + 1 + rng.randrange(len(rows) - 1)) % len(rows)]
    data.append({"prompt": r["question"], "privileged_context": f"{d['question']} {d['answer']}"})
from trl.experimental.sdft import SDFTConfig, SDFTTrainer
args = SDFTConfig(output_dir="/tmp/sdft/out", max_steps=steps, per_device_train_batch_size=32, learning_rate=5e-4,
                  num_generations=1, max_completion_length=2, max_prompt_length=64, logging_steps=1,
                  report_to="none", use_cpu=True, save_strategy="no", bf16=False, disable_tqdm=True,
                  teacher_prompt_template="{privileged_context}\n{prompt}",
                  distillation_topk=min(100, model.config.vocab_size))  # TRL's default 100 > the world's vocabulary
print("tokenizer", type(tok).__name__, "eos", tok.eos_token_id, "pad", tok.pad_token_id)
tr = SDFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tok)
t = time.perf_counter(); tr.train(); el = time.perf_counter() - t
print(json.dumps({"steps": steps, "seconds": round(el, 2), "per_step": round(el / steps, 3)}))
print([h for h in tr.state.log_history][-2:])
