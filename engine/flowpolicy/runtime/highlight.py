"""``@highlight``: obproject's step highlight, with a local Metaflow card as its stand-in.

Inside a ``@highlight`` step, ``self.highlight`` takes a title, labels, lines, columns or an
image, as obproject's ``HighlightData`` does. After the step the data is stored as the
``highlight_data`` artifact in obproject's shape, the run is tagged ``highlight`` when
something was set, and a ``blank`` card with id ``highlight`` shows it
(``python flow.py card view STEP --id highlight``). Outerbounds renders the same data with its
own highlight card, which needs its platform; this card needs nothing but Metaflow.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from metaflow import StepMutator, card, user_step_decorator

CARD_ID = "highlight"


def mimetype(blob: bytes) -> str:
    """The image type of ``blob`` by its magic bytes (JPEG, PNG, GIF), else octet-stream."""
    if blob[6:10] in (b"JFIF", b"Exif") or blob[:4] == b"\xff\xd8\xff\xdb":
        return "image/jpeg"
    if blob.startswith(b"\211PNG\r\n\032\n"):
        return "image/png"
    if blob[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


class HighlightData:
    """What a step highlights: ``set_title``, ``add_label``, ``add_line``, ``add_column``,
    ``set_image`` (an image replaces the columns)."""

    def __init__(self) -> None:
        self.title = ""
        self._labels: list[str] = []
        self._synopsis: list[str] = []
        self._columns: list[dict[str, str]] = []
        self._image: str | None = None

    def set_title(self, title: str) -> None:
        self.title = title

    def add_label(self, label: str) -> None:
        self._labels.append(label)

    def add_line(self, line: str, caption: str = "") -> None:
        self._synopsis.append(f"**{caption}** {line}")

    def add_column(self, big: str = "", small: str = "") -> None:
        self._columns.append({"big": big, "small": small})

    def set_image(self, img: bytes) -> None:
        encoded = base64.b64encode(img).decode("ascii")
        self._image = f"data:{mimetype(img)};base64,{encoded}"

    def _modified(self) -> bool:
        return any((self.title, self._labels, self._synopsis, self._columns, self._image))

    def _serialize(self) -> dict[str, Any]:
        image = self._image is not None
        return {
            "type": "highlight",
            "id": f"highlight-{uuid.uuid4()}",
            "title": self.title,
            "labels": self._labels,
            "synopsis": self._synopsis,
            "highlight_type": "image" if image else "columns",
            "highlight_body": {"src": self._image} if image else self._columns,
        }


def _card_components(data: dict[str, Any]) -> list[Any]:
    from metaflow.cards import Image, Markdown, Table

    parts: list[Any] = [Markdown(f"# {data['title'] or 'Highlight'}")]
    if data["labels"]:
        parts.append(Markdown(" · ".join(f"`{label}`" for label in data["labels"])))
    parts.extend(Markdown(line) for line in data["synopsis"])
    if data["highlight_type"] == "image":
        encoded = data["highlight_body"]["src"].split(",", 1)[1]
        parts.append(Image(src=base64.b64decode(encoded)))
    elif data["highlight_body"]:
        parts.append(Table([[c["big"] for c in data["highlight_body"]],
                            [c["small"] for c in data["highlight_body"]]]))
    return parts


@user_step_decorator
def highlight_api(step_name, flow, inputs=None):
    """Gives the step ``self.highlight``; stores, tags and draws what it set."""
    from metaflow import Run, current

    flow.highlight = HighlightData()
    try:
        yield
        if flow.highlight._modified():
            Run(f"{current.flow_name}/{current.run_id}", _namespace_check=False).add_tag(
                "highlight")
        flow.highlight_data = flow.highlight._serialize()
        for part in _card_components(flow.highlight_data):
            current.card[CARD_ID].append(part)
    finally:
        del flow.highlight


class highlight(StepMutator):
    """``@highlight`` on a step: ``self.highlight`` inside it, a card of it afterwards."""

    def mutate(self, mutable_step) -> None:
        mutable_step.add_decorator(highlight_api)
        mutable_step.add_decorator(card, deco_kwargs={"type": "blank", "id": CARD_ID})
