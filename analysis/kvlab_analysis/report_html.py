"""``report.html``: the report as one self-contained page (figures embedded as base64 PNG).

No scripts, no external files or fonts: the page can be mailed as it is.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from .report import Bullets, FigureBlock, Heading, Paragraph, Table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 1400px; margin: 2em auto; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #eee; }
h3 { font-size: 1.1em; margin-top: 1.6em; }
p.summary { font-size: 1.05em; background: #f6f8fa; padding: .8em 1em;
            border-left: 4px solid #0072B2; }
figure { margin: 1.2em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .92em; color: #444; margin-top: .4em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .88em;
       background: #f3f3f3; padding: 0 .2em; word-break: break-all; }
"""


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    escaped = html.escape(str(text))
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", escaped)


def _table(table: Table) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in table.header)
    body = []
    for row in table.rows:
        cells = []
        for i, value in enumerate(row):
            text = html.escape(str(value))
            if i in table.code_columns and value:
                text = f"<code>{text}</code>"
            cls = ' class="num"' if i in table.right else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(block: FigureBlock) -> str:
    figure = block.figure
    if figure.png is None or not figure.png.is_file():
        return f"<p>(figure {html.escape(figure.stem)} missing)</p>"
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    return (f'<figure id="{html.escape(figure.stem)}"><h3>{html.escape(figure.title)}</h3>'
            f'<img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><code>{html.escape(figure.png.name)}</code>: "
            f"{_inline(figure.caption)}</figcaption></figure>")


def to_html(blocks: list) -> str:
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "kvlab")
    parts = []
    first_paragraph = True
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 4)
            parts.append(f"<h{level}>{_inline(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            cls = ' class="summary"' if first_paragraph else ""
            first_paragraph = False
            parts.append(f"<p{cls}>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, FigureBlock):
            parts.append(_figure(block))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title.replace('`', ''))}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")


def write_html(blocks: list, out_dir: Path) -> Path:
    path = out_dir / "report.html"
    path.write_text(to_html(blocks), encoding="utf-8")
    return path
