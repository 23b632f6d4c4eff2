"""A self-contained HTML page from a Markdown report: figures embedded as base64 data URIs, one file to mail."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import jinja2
import markdown

_IMAGE_SOURCE = re.compile(r'src="([^"]+\.png)"')


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def embed_images(html: str, folder: Path) -> str:
    """Replace every ``src="name.png"`` that names a file in ``folder`` by the file's data URI."""
    def replace(match: re.Match[str]) -> str:
        path = Path(folder) / match.group(1)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image referenced by the report is missing")
        return f'src="{_data_uri(path)}"'

    return _IMAGE_SOURCE.sub(replace, html)


def render_html(markdown_text: str, folder: Path, *, title: str) -> str:
    """The report page: Markdown (with tables) converted, images from ``folder`` embedded, styled by the template."""
    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    environment = jinja2.Environment(loader=jinja2.PackageLoader("ecvl_router.report", "templates"), autoescape=True)
    return environment.get_template("report.html.jinja").render(title=title, body=embed_images(body, folder))
