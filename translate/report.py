"""The evaluation report: ``index.html`` (opens from disk, no server) and ``metrics.json``.

``index.html`` shows what was evaluated (the checkpoint's metadata), how (images, sizes, the
seed of KID's subsets, deterministic eval-mode inference), the summary table per folder, then one
row per image: thumbnails of each column (input | output | target ...) linking to the full-size
PNGs under ``images/``, and the image's figures.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from translate.atomic import atomic_path, atomic_write_text
from translate.evaluation import Evaluation

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td.name { text-align: left; }
img.thumb { max-width: 160px; max-height: 160px; image-rendering: auto; display: block; }
.note { color: #a60; } pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4f}"
    return html.escape(str(value))


def _finite(value: Any) -> Any:  # JSON has no inf: PSNR of identical images is written as null
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _folder_section(
    result: Any, folder_dir: Path, rel_dir: str
) -> tuple[list[str], dict[str, Any]]:
    """One evaluated folder's part of the page (its images written to ``folder_dir``, linked
    as ``rel_dir/...``) and its record in ``metrics.json``."""
    sizes = sorted(
        {f"{im.size[0]}x{im.size[1]}" for it in result.items for im in it.images.values()}
    )
    parts = [f"<h2>{html.escape(str(result.folder))}</h2>"]
    parts.append(
        f"<p class='protocol'>{len(result.rows)} images; image sizes {', '.join(sizes) or '-'};"
        " inference in eval mode (deterministic); KID: subsets of min(1000, n), seed 0.</p>"
    )
    means = result.means
    parts.append("<table class='summary'><tr><th>metric</th><th>value</th></tr>")
    parts += [
        f"<tr><td class='name'>{html.escape(m)}</td><td>{_fmt(v)}</td></tr>"
        for m, v in means.items()
    ]
    parts.append("</table>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in result.notes]
    columns = list(dict.fromkeys(c for it in result.items for c in it.images))
    figures = [m for m in (result.rows[0] if result.rows else {}) if m != "image"]
    header = "".join(f"<th>{html.escape(c)}</th>" for c in ["image", *columns, *figures])
    parts.append(f"<table class='images'><tr>{header}</tr>")
    folder_dir.mkdir()
    for i, (item, row) in enumerate(zip(result.items, result.rows, strict=True)):
        cells = [f"<td class='name'>{html.escape(item.name)}</td>"]
        for column in columns:
            image = item.images.get(column)
            if image is None:
                cells.append("<td></td>")
                continue
            slug = "".join(ch if ch.isalnum() else "_" for ch in column)
            name = f"{i:04d}_{slug}.png"
            image.save(folder_dir / name)
            rel = html.escape(f"{rel_dir}/{name}")
            cells.append(f"<td><a href='{rel}'><img class='thumb' src='{rel}'></a></td>")
        cells += [f"<td>{_fmt(row.get(m, ''))}</td>" for m in figures]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    record = {
        "folder": str(result.folder),
        "images": len(result.rows),
        "means": {m: _finite(v) for m, v in means.items()},
        "notes": result.notes,
        "rows": [{m: _finite(v) for m, v in row.items()} for row in result.rows],
    }
    return parts, record


def write_report(evaluation: Evaluation, out_dir: Path) -> Path:
    """Write ``out_dir/index.html``, ``out_dir/metrics.json`` and ``out_dir/images/``. The
    images folder is written whole and then renamed over an earlier report's, so an eval that
    fails or is interrupted while its images are written leaves the earlier report's page and
    images as they were (the page is written last, after them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>translate eval: {html.escape(evaluation.model)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Evaluation</h1><p>model: <code>{html.escape(evaluation.model)}</code></p>",
    ]
    folders_json = []
    with atomic_path(out_dir / "images", folder=True) as images_dir:
        for k, result in enumerate(evaluation.results):
            section, record = _folder_section(result, images_dir / f"{k:02d}", f"images/{k:02d}")
            parts += section
            folders_json.append(record)
    meta = json.dumps(evaluation.meta, indent=2, default=str)
    parts.append(f"<h2>Checkpoint</h2><pre>{html.escape(meta)}</pre></body></html>")
    record = {"model": evaluation.model, "meta": evaluation.meta, "folders": folders_json}
    atomic_write_text(out_dir / "metrics.json", json.dumps(record, indent=2, default=str))
    atomic_write_text(out_dir / "index.html", "\n".join(parts))  # last: the page is complete
    return out_dir / "index.html"
