"""``make bench``: run every ``bench/bench_*.py`` module's ``run()`` and write
``bench/results.json`` — a list of ``{name, value, unit, reference, ratio}``, each
measured against its reference in the same run on the same machine. Naming modules
(``python bench/run.py bench_library``) runs only those and replaces only their figures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[path.stem] = module  # dataclasses look their module up while defining a class
    spec.loader.exec_module(module)
    return module


def main(selected: list[str]) -> None:
    results: list[dict] = []
    for path in sorted(HERE.glob("bench_*.py")):
        if selected and path.stem not in selected:
            continue
        print(f"== {path.stem}", flush=True)
        for entry in load(path).run():
            results.append(entry)
            print(
                f"   {entry['name']}: {entry['value']:.4g} {entry['unit']} "
                f"(reference {entry['reference']:.4g}, ratio {entry['ratio']:.3g})",
                flush=True,
            )
    target = HERE / "results.json"
    if selected and target.exists():  # a partial run replaces only its own figures
        fresh = {entry["name"] for entry in results}
        results = [e for e in json.loads(target.read_text()) if e["name"] not in fresh] + results
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {target} ({len(results)} results)")


if __name__ == "__main__":
    main(sys.argv[1:])
