"""GeoReport v2 documents in JSON and in XML (the XML the JSON maps to by the spec's Spark
convention: a list is an element holding one child per item)."""

import json
import re
from enum import StrEnum
from typing import Any
from xml.etree import ElementTree

from fastapi import Response

# The element of each item of a list, by the list's element.
ITEM_ELEMENTS = {
    "services": "service",
    "service_requests": "request",
    "service_requests_updates": "request_update",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}


class Format(StrEnum):
    json = "json"
    xml = "xml"


# Characters XML 1.0 cannot carry (it can tab, line feed and carriage return). The gateway
# refuses them on input; text stored before is written without them.
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_XML.sub("", str(value))


def _fill(element: ElementTree.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _fill(ElementTree.SubElement(element, key), inner)
    elif isinstance(value, list):
        for item in value:
            _fill(ElementTree.SubElement(element, ITEM_ELEMENTS[element.tag]), item)
    else:
        element.text = _text(value)


def to_xml(root: str, document: dict[str, Any] | list[Any]) -> bytes:
    element = ElementTree.Element(root)
    _fill(element, document)
    return ElementTree.tostring(element, encoding="utf-8", xml_declaration=True)


def respond(
    fmt: Format,
    root: str,
    document: dict[str, Any] | list[Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """`document` as JSON, or as XML under the element `root`."""
    if fmt == Format.xml:
        body = to_xml(root, document)
        return Response(body, status_code, headers, media_type="text/xml; charset=utf-8")
    return Response(
        _json(document), status_code, headers, media_type="application/json; charset=utf-8"
    )


def _json(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def format_of_path(path: str) -> Format:
    return Format.xml if path.endswith(".xml") else Format.json


def error_response(
    path: str, status_code: int, description: str, headers: dict[str, str] | None = None
) -> Response:
    """The GeoReport v2 error document: a list of {code, description}."""
    document = [{"code": status_code, "description": description}]
    return respond(format_of_path(path), "errors", document, status_code, headers)
