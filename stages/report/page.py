"""One self-contained HTML page: sections of text, tables and embedded PNG images.

Nothing is fetched when the page opens (no CDN, no script, no web font): images are
``data:image/png;base64`` URIs and the style sheet is inline, so a report opens offline
and can be mailed as one file. Tables and sections carry ``id``/``class`` attributes
that tests (and readers' browsers) can find.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .8; }
nav { padding: 8px 32px; background: #e8ebf0; font-size: 13px; }
nav a { margin-right: 14px; color: #2a5bd7; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1280px; }
section { background: #fff; border-radius: 6px; padding: 14px 20px; margin: 16px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { margin: 0 0 8px; font-size: 18px; }
p.note { color: #555; margin: 4px 0 10px; }
p.warning { background: #fff1e6; border-left: 4px solid #e07b00; padding: 6px 10px; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
th, td { border-bottom: 1px solid #e3e6eb; padding: 3px 8px; text-align: left;
         vertical-align: top; }
th { background: #f0f2f5; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flag td { background: #fff1e6; }
table.kv td.num { text-align: left; }
table.kv td:first-child { color: #555; white-space: nowrap; }
img.preview { width: 560px; image-rendering: pixelated; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #2a5bd7; }
.scroll { max-height: 420px; overflow: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; background: #fafbfc; border: 1px solid #e3e6eb; border-radius: 4px;
         padding: 4px; }
figure img { margin: 0; }
figcaption { font-size: 12px; color: #444; padding: 2px 4px; max-width: 330px; }
code { background: #f0f2f5; padding: 0 3px; border-radius: 3px; }
"""


def png_bytes(figure: Any, dpi: int) -> bytes:
    """A matplotlib figure as PNG bytes, without the metadata that changes between runs."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None},
                   bbox_inches="tight", pad_inches=0.05)
    plt.close(figure)
    return buffer.getvalue()


def image_png(image_rgb: np.ndarray) -> bytes:
    """An RGB uint8 array as PNG bytes (OpenCV's encoder: deterministic, no metadata)."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image_rgb[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int | np.integer):
        return f'<td class="num">{int(value)}</td>'
    if isinstance(value, float | np.floating):
        text = "" if np.isnan(value) else f"{float(value):.4g}"
        return f'<td class="num">{text}</td>'
    return f"<td>{esc(value)}</td>"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, row_class: str = "",
          flags: Iterable[bool] | None = None, table_id: str = "", table_class: str = "") -> str:
    """An HTML table; each row gets ``row_class`` (and ``flag`` where ``flags`` says)."""
    flags = list(flags) if flags is not None else None
    css = f' class="{table_class}"' if table_class else ""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    thead = f"<thead><tr>{head}</tr></thead>" if any(columns) else ""
    body = []
    for k, row in enumerate(rows):
        classes = " ".join(c for c in (row_class, "flag" if flags and flags[k] else "") if c)
        attr = f' class="{classes}"' if classes else ""
        body.append(f"<tr{attr}>" + "".join(_cell(v) for v in row) + "</tr>")
    tid = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{tid}{css}>{thead}<tbody>{''.join(body)}</tbody></table>"


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    return table(["", ""], list(pairs), table_class="kv")


@dataclass
class Page:
    title: str
    subtitle: str
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (id, heading, body)

    def add(self, section_id: str, heading: str, *parts: str) -> None:
        self.sections.append((section_id, heading, "\n".join(parts)))

    @staticmethod
    def note(text: str) -> str:
        return f'<p class="note">{esc(text)}</p>'

    @staticmethod
    def warning(text: str) -> str:
        return f'<p class="warning">{esc(text)}</p>'

    @staticmethod
    def image(png: bytes, alt: str, css_class: str = "plot") -> str:
        return f'<img class="{css_class}" alt="{esc(alt)}" src="{data_uri(png)}">'

    @staticmethod
    def figure(png: bytes, caption: str, css_class: str) -> str:
        return (f'<figure class="{css_class}"><img alt="{esc(caption)}" src="{data_uri(png)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>")

    @staticmethod
    def collapsed(label: str, body: str) -> str:
        return f'<details><summary>{esc(label)}</summary><div class="scroll">{body}</div></details>'

    def render(self) -> str:
        nav = "".join(f'<a href="#{esc(i)}">{esc(h)}</a>' for i, h, _ in self.sections)
        body = "".join(f'<section id="{esc(i)}"><h2>{esc(h)}</h2>{b}</section>'
                       for i, h, b in self.sections)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<header><h1>{esc(self.title)}</h1><p>{esc(self.subtitle)}</p></header>"
                f"<nav>{nav}</nav><main>{body}</main></body></html>\n")
