"""Statistics as CSV or XLSX tables, with English or Chinese column headers."""

import csv
import io
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from fastapi import Response
from openpyxl import Workbook
from pydantic import BaseModel

ZH_HEADERS = {
    "rank": "排名",
    "key": "分组",
    "score": "综合得分",
    "reported": "上报数",
    "accepted": "应结案数",
    "closed": "结案数",
    "closed_on_time": "按期结案数",
    "closure_rate": "结案率",
    "on_time_closure_rate": "按期结案率",
    "self_resolved": "自行处置数",
    "open": "未结案数",
    "overdue_open": "超期未结案数",
    "escalated": "上报升级数",
    "reworked": "返工数",
    "rework_rate": "返工率",
    "reopened": "重办数",
    "reopen_rate": "重办率",
    "resolved_in_community": "社区内解决数",
    "in_community_rate": "社区内解决率",
    "rated": "评价数",
    "satisfied": "满意数",
    "satisfaction_rate": "满意率",
    "avg_handling_hours": "平均处置时长(小时)",
}
TOTAL = {"en": "total", "zh": "合计"}
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class Format(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class Lang(StrEnum):
    en = "en"
    zh = "zh"


def chosen_format(requested: Format | None, accept: str | None) -> Format:
    """`?format=` wins; otherwise an Accept header naming CSV or XLSX; otherwise JSON."""
    if requested is not None:
        return requested
    accept = accept or ""
    if "text/csv" in accept:
        return Format.csv
    if MEDIA_TYPES["xlsx"] in accept:
        return Format.xlsx
    return Format.json


def table(
    model: type[BaseModel], rows: Sequence[BaseModel], lang: Lang, total: BaseModel | None = None
) -> tuple[list[str], list[list[Any]]]:
    names = list(model.model_fields)
    headers = [ZH_HEADERS.get(n, n) if lang == Lang.zh else n for n in names]
    values = [[getattr(row, n) for n in names] for row in rows]
    if total is not None:
        values.append([TOTAL[lang] if n == "key" else getattr(total, n) for n in names])
    return headers, values


def render(fmt: Format, name: str, headers: list[str], values: list[list[Any]]) -> Response:
    if fmt == Format.csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(headers)
        writer.writerows([["" if v is None else v for v in row] for row in values])
        body = ("\ufeff" + out.getvalue()).encode()  # the BOM lets Excel read it as UTF-8
    else:
        workbook = Workbook()
        sheet = workbook.active
        assert sheet is not None
        sheet.title = name
        sheet.append(headers)
        for row in values:
            sheet.append(row)
        buffer = io.BytesIO()
        workbook.save(buffer)
        body = buffer.getvalue()
    return Response(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )
