"""Chinese message templates: versioned Jinja2 files, rendered and length-checked.

A template is `templates/<template id>.v<version>.j2` in this package. Its first statement
sets the title (`{% set title = "..." %}`, used by e-mail and push); the rest is the text.
Each notification stores the template id and version it was rendered with; a new wording is
a new version file, so what a person was sent stays explainable.

SMS length policy: Chinese text is sent as UCS-2: 70 characters in one SMS, 67 per part of
a concatenated SMS; the gateway adds the signature 【…】, which counts. A message is split
into at most `MAX_SMS_PARTS` parts; longer texts are refused (TemplateError) and the
notification falls back to its next channel. Templates truncate free text (summaries,
reasons) so that case messages stay within two parts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import jinja2

MAX_SMS_PARTS = 4
_UCS2_SINGLE, _UCS2_PART = 70, 67
_GSM_SINGLE, _GSM_PART = 160, 153
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVW"
    "XYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€")
_FILE = re.compile(r"^(?P<id>[a-z][a-z0-9_.]{1,63})\.v(?P<version>[1-9][0-9]{0,3})\.j2$")


class TemplateError(ValueError):
    """Unknown template or version, a missing variable, or a text too long for its channel."""


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "gsm7" or "ucs2"
    units: int  # characters as the network counts them (UTF-16 units for UCS-2)
    parts: int


def sms_length(text: str) -> SmsLength:
    """How many SMS parts `text` (signature included) takes."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, part, encoding = _GSM_SINGLE, _GSM_PART, "gsm7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # a character outside the BMP takes two
        single, part, encoding = _UCS2_SINGLE, _UCS2_PART, "ucs2"
    parts = 1 if units <= single else -(-units // part)
    return SmsLength(encoding=encoding, units=units, parts=parts)


def sms_text(sign_name: str, body: str) -> str:
    """The text as the handset shows it: the signature first, as Chinese gateways add it."""
    return f"【{sign_name}】{body}"


@dataclass(frozen=True)
class Rendered:
    template_id: str
    template_version: int
    title: str
    body: str


class TemplateCatalogue:
    """Every version of every template, compiled once."""

    def __init__(self, sources: Mapping[tuple[str, int], str]) -> None:
        self._env = jinja2.Environment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self._templates = {key: self._env.from_string(src) for key, src in sources.items()}
        self._current: dict[str, int] = {}
        for template_id, version in sources:
            self._current[template_id] = max(version, self._current.get(template_id, 0))

    @classmethod
    def from_files(cls, root: Traversable) -> TemplateCatalogue:
        sources: dict[tuple[str, int], str] = {}
        for entry in root.iterdir():
            match = _FILE.match(entry.name)
            if match:
                key = (match["id"], int(match["version"]))
                sources[key] = entry.read_text(encoding="utf-8")
        return cls(sources)

    def ids(self) -> Iterable[str]:
        return sorted(self._current)

    def current_version(self, template_id: str) -> int:
        try:
            return self._current[template_id]
        except KeyError:
            raise TemplateError(f"unknown template {template_id!r}") from None

    def render(
        self,
        template_id: str,
        version: int | None,
        variables: Mapping[str, str | int | float | bool],
    ) -> Rendered:
        """Title and text; TemplateError names what is missing."""
        version = version or self.current_version(template_id)
        template = self._templates.get((template_id, version))
        if template is None:
            raise TemplateError(f"template {template_id!r} has no version {version}")
        try:
            module = template.make_module(dict(variables))
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {template_id} v{version}: {exc.message}") from exc
        body = " ".join(str(module).split())  # one line: SMS and push show no layout
        title = str(getattr(module, "title", "")) or template_id
        return Rendered(template_id, version, title, body)


def check_sms(sign_name: str, body: str, max_parts: int = MAX_SMS_PARTS) -> SmsLength:
    """The SMS length, or TemplateError when it needs more than `max_parts` parts."""
    length = sms_length(sms_text(sign_name, body))
    if length.parts > max_parts:
        raise TemplateError(
            f"SMS text is {length.units} characters: {length.parts} parts, at most "
            f"{max_parts} allowed"
        )
    return length
