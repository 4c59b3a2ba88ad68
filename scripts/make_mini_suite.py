"""Writes the JSONL data of the `mini` lm-eval suite (src/promot/evaluate/suites/mini/data/).

Deterministic (fixed seeds, sorted inputs); re-run to regenerate byte-identical files:
    python scripts/make_mini_suite.py [--gensim-data DIR]
Real sentences and word lists come from the gensim wheel's test data (pang_lee_polarity.cor, questions-words.txt).
gensim is needed only here, never at run time; it is found via importlib without importing it, or pass
--gensim-data (e.g. the gensim/test/test_data folder of an unzipped `pip download --no-deps gensim==4.4.0` wheel).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "promot" / "evaluate" / "suites" / "mini" / "data"
HAS_A = ROOT / "examples" / "has_a" / "make_data.py"
N_TRAIN, MAX_TEST = 24, 100

# Hand-written lists: easy, unambiguous items (one clear answer each).
ANTONYMS = """hot cold|big small|up down|day night|good bad|fast slow|happy sad|open closed|tall short|rich poor
young old|wet dry|hard soft|early late|full empty|heavy light|thick thin|strong weak|clean dirty|loud quiet|left right
in out|yes no|true false|win lose|buy sell|push pull|give take|love hate|first last|top bottom|front back
inside outside|above below|before after|always never|everything nothing|north south|east west|black white|boy girl
man woman|king queen|husband wife|brother sister|father mother|son daughter|question answer|friend enemy|war peace
summer winter|sunrise sunset|asleep awake|alive dead|cheap expensive|easy difficult|safe dangerous|wide narrow
deep shallow|high low|near far|many few|maximum minimum|success failure|accept reject|remember forget|add subtract
increase decrease|entrance exit|import export|inhale exhale|include exclude|visible invisible|possible impossible
polite rude|beautiful ugly|smooth rough|present absent|guilty innocent|major minor|odd even|positive negative
floor ceiling|noisy silent|dark bright"""
EN_FR = """dog chien|cat chat|house maison|water eau|book livre|car voiture|bread pain|cheese fromage|apple pomme
red rouge|blue bleu|green vert|black noir|white blanc|sun soleil|moon lune|star étoile|sea mer|tree arbre
flower fleur|city ville|school école|friend ami|day jour|night nuit|week semaine|month mois|morning matin
hello bonjour|thanks merci|yes oui|no non|two deux|three trois|four quatre|five cinq|ten dix|man homme
woman femme|child enfant|boy garçon|girl fille|father père|mother mère|brother frère|sister sœur|king roi
queen reine|horse cheval|bird oiseau|fish poisson|milk lait|wine vin|chair chaise|door porte|window fenêtre
street rue|bed lit|head tête|hand main|mouth bouche|heart cœur|love amour|money argent|world monde
country pays|mountain montagne|rain pluie|snow neige|wind vent|fire feu|sky ciel|small petit|hot chaud
cold froid|happy heureux|tomorrow demain|yesterday hier|always toujours|never jamais|with avec|without sans
chicken poulet|egg œuf|sugar sucre|salt sel|butter beurre|garden jardin|key clé|cake gâteau|dance danser"""
EXTRA_PLURALS = """box boxes|bus buses|baby babies|city cities|knife knives|leaf leaves|foot feet|tooth teeth
goose geese|wolf wolves|glass glasses|dish dishes|church churches|fox foxes|story stories|lady ladies|party parties
wife wives|potato potatoes|tomato tomatoes|hero heroes|book books|tree trees|house houses|apple apples|chair chairs
table tables|river rivers|flower flowers|girl girls|boy boys|key keys|toy toys|day days|brush brushes|watch watches"""
NOUNS = """apple table garden window river mountain pencil bottle kitchen doctor teacher flower planet orange guitar
rabbit tiger candle basket bridge castle dragon engine forest island jacket ladder market number ocean pocket
rocket silver summer ticket turtle valley wallet winter yellow zebra anchor butter camera desert finger hammer
jungle kettle lemon monkey napkin oyster parrot puzzle quilt ribbon saddle tomato umbrella violin wagon yogurt
blanket cabin dolphin feather gravel harbor insect jelly kitten lantern magnet needle orbit pepper rainbow
shadow thunder velvet whistle meadow cotton sugar paper chair horse house water music night light money"""
SKIP_CAPITALS = {"Kiev"}  # spelling changed (Kyiv): two defensible answers


def pairs(text: str) -> list[tuple[str, str]]:
    return [tuple(p.split(" ", 1)) for p in text.replace("\n", "|").split("|")]


def gensim_data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    spec = importlib.util.find_spec("gensim")  # locate only: importing gensim is slow and unnecessary
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gensim not found: `pip install gensim==4.4.0` (generation only) or pass --gensim-data DIR")
    return Path(spec.submodule_search_locations[0]) / "test" / "test_data"


def analogy_sections(path: Path) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            current = sections.setdefault(line[1:].strip(), [])
        elif line.strip():
            current.append(line.split())
    return sections


def split(items: list[dict], seed: int, n_train: int = N_TRAIN) -> dict[str, list[dict]]:
    items = list(items)
    random.Random(seed).shuffle(items)
    test = items[n_train:n_train + MAX_TEST]
    assert len(items[:n_train]) >= 16 and len(test) >= 40, (len(items), n_train)
    return {"train": items[:n_train], "test": test}


def qa(question: str, answer: str) -> dict:
    return {"question": question, "answer": answer}


def build_icl(gdir: Path) -> dict[str, dict[str, list[dict]]]:
    qw = analogy_sections(gdir / "questions-words.txt")
    capitals = sorted({(r[0], r[1]) for r in qw["capital-world"] if r[0] not in SKIP_CAPITALS})
    plurals = sorted({(r[0], r[1]) for r in qw["gram8-plural"]} | set(pairs(EXTRA_PLURALS)))
    analogies = sorted({tuple(r) for r in qw["capital-common-countries"]})
    nouns = sorted(set(NOUNS.split()))

    arith = set()
    rng = random.Random(5)
    while len(arith) < 130:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        arith.add((a, "plus", b, a + b) if rng.random() < 0.5 else (max(a, b), "minus", min(a, b), abs(a - b)))
    sort3 = set()
    while len(sort3) < 130:
        sort3.add(tuple(rng.sample(range(1, 21), 3)))

    sentences = []
    for line in (gdir / "pang_lee_polarity.cor").read_text(encoding="latin-1").splitlines():
        label, text = line.split(" ", 1)
        text = re.sub(r" ([,.;:!?])", r"\1", text.strip())
        text = re.sub(r'" (.*?) "', r'"\1"', text)
        sentences.append(qa(f"Review: {text[0].upper() + text[1:]} Sentiment:",
                            "positive" if label == "__label__pos" else "negative"))
    by_label = {lab: [s for s in sentences if s["answer"] == lab] for lab in ("positive", "negative")}
    sentiment = {"train": [], "test": []}
    for lab, rows in sorted(by_label.items()):  # stratified: 50/50 labels in both splits
        for k, v in split(rows, seed=6, n_train=len(rows) // 2).items():
            sentiment[k] += v
    for k, v in sentiment.items():
        random.Random(7).shuffle(v)

    return {
        "capitals": split([qa(f"What is the capital of {c}? Answer:", city) for city, c in capitals], 1, 36),
        "arithmetic": split([qa(f"What is {a} {op} {b}? Answer:", str(r)) for a, op, b, r in sorted(arith)], 2, 30),
        "antonyms": split([qa(f"The opposite of {w} is", a) for w, a in pairs(ANTONYMS)], 3),
        "plurals": split([qa(f"The plural of {w} is", p) for w, p in plurals], 4),
        "en_fr": split([qa(f"The French word for {w} is", f) for w, f in pairs(EN_FR)], 8),
        "sentiment": sentiment,
        "analogy": split([qa(f"{a} is to {b} as {c} is to", d) for a, b, c, d in analogies], 9, 32),
        "uppercase": split([qa(f"Write {w} in capital letters:", w.upper()) for w in nouns], 10),
        "sort3": split([qa(f"Sort {a} {b} {c} from smallest to largest:", " ".join(map(str, sorted((a, b, c)))))
                        for a, b, c in sorted(sort3)], 11, 30),
        "first_letter": split([qa(f"The first letter of {w} is", w[0]) for w in nouns], 12),
    }


def qa_form(r: dict) -> str:
    """has_a asked the way the suite's QA tasks ask ("…? Answer:"): a target whose format every other task shares."""
    claim = r["hypothesis"].rstrip(".")
    claim = claim[0].lower() + claim[1:] if claim.startswith("The ") else claim
    return f"{r['premise']} Is it true that {claim}? Answer:"


def build_has_a() -> dict[str, list[dict]]:
    """RTE-style target task, same generator as examples/has_a (imported), own seeds; test excludes train items."""
    spec = importlib.util.spec_from_file_location("has_a_make_data", HAS_A)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out: dict[str, list[dict]] = {}
    seen: set[tuple[str, str]] = set()
    for name, n, seed in (("train", 512, 100), ("validation", 64, 101), ("test", 100, 102)):
        rng, rows = random.Random(seed), []
        while len(rows) < n:
            r = mod.record(rng)
            if name != "train" and (r["premise"], r["hypothesis"]) in seen:
                continue
            seen.add((r["premise"], r["hypothesis"]))
            rows.append({**r, "answer": r["label"], "question": qa_form(r)})
        out[name] = rows
    return out


def write(name: str, splits: dict[str, list[dict]]) -> None:
    for split_name, rows in splits.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (OUT / f"{name}.{split_name}.jsonl").write_text(text, encoding="utf-8")
        print(f"{name}.{split_name}: {len(rows)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gensim-data", help="gensim/test/test_data folder (default: found via importlib)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, splits in build_icl(gensim_data_dir(args.gensim_data)).items():
        write(name, splits)
    write("has_a", build_has_a())


if __name__ == "__main__":
    main()
