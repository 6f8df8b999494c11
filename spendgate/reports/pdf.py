"""The PDF report, laid out with reportlab's platypus: key figures, then each section with its chart
(a PNG drawn by matplotlib) and its table. Text uses the DejaVu fonts matplotlib ships, embedded, so
any team or model name prints and the text can be searched and copied."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from spendgate.reports.charts import Chart
from spendgate.reports.layout import Document
from spendgate.reports.layout import Table as DocTable

FONT, BOLD, MONO = "SpendgateSans", "SpendgateSans-Bold", "SpendgateMono"
INK = colors.HexColor("#1e293b")
GREY = colors.HexColor("#64748b")
LINE = colors.HexColor("#e2e8f0")
_CODE = re.compile(r"`([^`]+)`")
WIDTH = A4[0] - 36 * mm
MAX_CHART_HEIGHT = A4[1] - 90 * mm


def _register_fonts() -> None:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    from matplotlib import get_data_path

    folder = Path(get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFont(TTFont(MONO, str(folder / "DejaVuSansMono.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12.5, textColor=INK)
    return {
        "body": base,
        "title": ParagraphStyle("title", parent=base, fontName=BOLD, fontSize=17, leading=21),
        "period": ParagraphStyle("period", parent=base, textColor=GREY, fontSize=10, spaceAfter=8),
        "h2": ParagraphStyle("h2", parent=base, fontName=BOLD, fontSize=12, leading=15, spaceBefore=10),
        "label": ParagraphStyle("label", parent=base, fontSize=7.5, textColor=GREY, leading=9),
        "value": ParagraphStyle("value", parent=base, fontName=BOLD, fontSize=13, leading=16),
        "note": ParagraphStyle("note", parent=base, fontSize=7, textColor=GREY, leading=8.5),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10),
        "num": ParagraphStyle("num", parent=base, fontSize=8, leading=10, alignment=TA_RIGHT),
        "head": ParagraphStyle("head", parent=base, fontName=BOLD, fontSize=8, leading=10, textColor=GREY),
    }


def _prose(text: str) -> str:
    return _CODE.sub(rf'<font face="{MONO}">\1</font>', escape(text))


def _figures(document: Document, styles: dict[str, ParagraphStyle]) -> Table:
    cells: list[Any] = [
        [
            Paragraph(escape(f.label), styles["label"]),
            Paragraph(escape(f.value), styles["value"]),
            Paragraph(escape(f.note), styles["note"]),
        ]
        for f in document.figures
    ]
    per_row = 3
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    rows[-1] += [""] * (per_row - len(rows[-1]))
    table = Table(rows, colWidths=[WIDTH / per_row] * per_row)
    table.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.5, LINE),
                ("INNERGRID", (0, 0), (-1, -1), 0.5, LINE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    return table


def _table(spec: DocTable, styles: dict[str, ParagraphStyle]) -> Flowable:
    if not spec.rows:
        return Paragraph("<i>None in this period.</i>", styles["body"])

    def cell(text: str, column: int, style: str) -> Paragraph:
        return Paragraph(escape(text), styles["num" if column in spec.numeric and style == "cell" else style])

    head = [cell(h, i, "head") for i, h in enumerate(spec.headers)]
    body = [[cell(v, i, "cell") for i, v in enumerate(row)] for row in spec.rows]
    table = Table([head, *body], repeatRows=1, colWidths=_widths(spec))
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, GREY),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, LINE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _widths(spec: DocTable) -> list[float]:
    """Text columns share what the numeric ones leave (a numeric column gets a fixed width)."""
    columns = len(spec.headers)
    numeric = [i for i in range(columns) if i in spec.numeric]
    fixed = 24 * mm
    text_width = (WIDTH - fixed * len(numeric)) / max(columns - len(numeric), 1)
    return [fixed if i in numeric else text_width for i in range(columns)]


def _chart(chart: Chart) -> Image:
    """The chart's PNG scaled to the text width (drawn at 160 dpi, so it stays sharp in print)."""
    # Uncompressed BMP: reportlab compresses the pixels once itself (a PNG is inflated again first).
    bitmap = io.BytesIO()
    chart.pixels().save(bitmap, format="BMP")
    bitmap.seek(0)
    image = Image(bitmap)
    scale = min(WIDTH / image.imageWidth, MAX_CHART_HEIGHT / image.imageHeight)  # never taller than a page
    image.drawHeight = image.imageHeight * scale
    image.drawWidth = image.imageWidth * scale
    return image


def render_pdf(document: Document, charts: Sequence[Chart]) -> bytes:
    _register_fonts()
    styles = _styles()
    by_name = {c.name: c for c in charts}
    story: list[Flowable] = [
        Paragraph(escape(document.title), styles["title"]),
        Paragraph(escape(document.period), styles["period"]),
        _figures(document, styles),
        Spacer(1, 6 * mm),
    ]
    for section in document.sections:
        head: list[Flowable] = [
            Paragraph(escape(section.title), styles["h2"]),
            Paragraph(_prose(section.text), styles["body"]),
            Spacer(1, 2 * mm),
        ]
        if section.chart and section.chart in by_name:
            head += [_chart(by_name[section.chart]), Spacer(1, 2 * mm)]
        if section.table is not None:
            head.append(_table(section.table, styles))
        story.append(KeepTogether(head))
    buffer = io.BytesIO()
    generated = document.generated

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.setFillColor(GREY)
        canvas.drawString(18 * mm, 10 * mm, f"{document.title} · generated {generated}")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=document.title,
        author="Spendgate",
        subject=document.period,
    ).build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
