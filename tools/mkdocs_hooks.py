"""mkdocs hooks: the benchmark page is built from the benchmark suite's own output.

``docs/benchmarks.md`` holds the line ``<!-- include: bench/RESULTS.md -->``; at build
time it is replaced by that file (its title dropped, its headings one level down), and
the chart ``bench/results.png`` that the file shows is added to the site as
``results.png``. So the site always shows the latest ``lstmcompat bench`` run,
without a copy in ``docs/``.

The docstrings use Sphinx roles (``:func:`lstmcompat.choose```), which Markdown
renders as the role's text before the code: the rendered pages drop the role,
``~a.b.C`` (Sphinx's "show the last name") becomes ``C``, and the ``::`` that opens
a reST literal block (rendered as a code block anyway) becomes ``:``.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|exc|obj):(?=<code>)")
_TILDE = re.compile(r"<code>~(?:\w+\.)*(\w+)</code>")
_INCLUDE = re.compile(r"^<!-- include: (?P<path>[\w./-]+) -->$", re.M)


def on_files(files, config):
    chart = ROOT / "bench" / "results.png"
    if chart.exists():
        files.append(File.generated(config, "results.png", abs_src_path=str(chart)))
    return files


def _included(path: str) -> str:
    text = (ROOT / path).read_text()
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" + ln if re.match(r"#+ ", ln) else ln for ln in lines) + "\n"


def on_page_markdown(markdown, page, config, files):
    return _INCLUDE.sub(lambda m: _included(m.group("path")), markdown)


def on_page_content(html, page, config, files):
    html = _TILDE.sub(r"<code>\1</code>", _ROLE.sub("", html))
    return html.replace("::</p>\n<div class=\"highlight\">", ":</p>\n<div class=\"highlight\">")
