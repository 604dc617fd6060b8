"""``lstmcompat.bench.ab``: the suite of this tree measures the ``lstmcompat`` of another
source tree, which need not have the benchmark suite itself."""

from __future__ import annotations

import shutil
from pathlib import Path

from lstmcompat.bench import ab

SRC = Path(__file__).resolve().parents[2] / "src"


def test_run_tree_measures_the_given_tree_with_this_suite(tmp_path):
    old = tmp_path / "old_src"
    shutil.copytree(SRC / "lstmcompat", old / "lstmcompat",
                    ignore=shutil.ignore_patterns("bench", "__pycache__"))
    res = ab.run_tree(str(old), 1, shapes=[(2, 3, 4, 8)], steps=3)
    assert Path(res["lstmcompat"]).resolve() == (old / "lstmcompat" / "__init__.py").resolve()
    assert {t["shape"][0] for t in res["targets"]} >= {2}
    assert any(r["variant"] == "keras_hard" for r in res["rows"])
