"""A small reader for SwarmUI's FDS files (FreneticUtilities' FDSParser), enough to check the
templates the image ships the way SwarmUI will read them.

Rules kept from the reference parser: tabs count as 4 spaces; '#' starts a comment line; a key
ends at the first ':' or '='; 'key:' with nothing after opens a subsection (deeper indentation)
or a list ('-' items at the same indentation); a line indented deeper than its section without
a key, or a list item without a key, is an error; '=' values are base64 binary."""

import base64
import re


class FDSError(ValueError):
    pass


def _clean(text):
    return text.replace("\r\n", "\n").replace("\r", "").replace("\t", "    ")


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _unescape(value):
    # FDSUtility.UnEscape: '&' escapes; the templates must not need them.
    if "&" in value:
        raise FDSError(f"escaped value not supported by this reader: {value!r}")
    return value


def _interpret(separator, text, line_number, line):
    if separator == "=":
        try:
            return base64.b64decode(text, validate=True)
        except ValueError as error:
            raise FDSError(f"line {line_number + 1}: binary value invalid: {line}") from error
    return _unescape(text)


def _significant(lines, start):
    """Index of the next non-blank, non-comment line at or after start, or None."""
    for index in range(start, len(lines)):
        stripped = lines[index].strip(" ")
        if stripped and not stripped.startswith("#"):
            return index
    return None


def _parse_section(lines, start, spacing):
    """Parses keys at exactly `spacing` spaces from line `start`; returns (dict, next line)."""
    section = {}
    index = start
    while True:
        index = _significant(lines, index)
        if index is None:
            return section, len(lines)
        line = lines[index]
        spaces = _indent(line)
        text = line.strip(" ")
        if spaces < spacing:
            return section, index
        if text[0] in "-=>":
            raise FDSError(f"line {index + 1}: list without a key: {line}")
        if spaces > spacing:
            raise FDSError(f"line {index + 1}: spacing grew for no reason (expected {spacing}, got {spaces}): {line}")
        match = re.search(r"[:=]", text)
        if match is None:
            raise FDSError(f"line {index + 1}: line has unknown purpose (no ':'): {line}")
        key, separator, rest = text[: match.start()], match.group(), text[match.end():].lstrip(" ")
        if not key:
            raise FDSError(f"line {index + 1}: empty key: {line}")
        if key in section:
            raise FDSError(f"line {index + 1}: duplicate key {key!r}")
        if rest:
            section[key] = _interpret(separator, rest, index, line)
            index += 1
            continue
        if separator == "=":
            raise FDSError(f"line {index + 1}: cannot create a binary subsection: {line}")
        child = _significant(lines, index + 1)
        if child is not None and _indent(lines[child]) > spacing:
            section[key], index = _parse_section(lines, child, _indent(lines[child]))
        elif child is not None and _indent(lines[child]) == spacing and lines[child].strip(" ")[0] == "-":
            section[key], index = _parse_list(lines, child, spacing)
        else:
            section[key] = {}
            index += 1


def _parse_list(lines, start, spacing):
    items = []
    index = start
    while True:
        index = _significant(lines, index)
        if index is None:
            return items, len(lines)
        line = lines[index]
        text = line.strip(" ")
        if _indent(line) != spacing or text[0] != "-":
            return items, index
        items.append(_unescape(text[1:].lstrip(" ")))
        index += 1


def parse(text):
    lines = _clean(text).split("\n")
    section, end = _parse_section(lines, 0, 0)
    leftover = _significant(lines, end)
    if leftover is not None:
        raise FDSError(f"line {leftover + 1}: line inside root has unknown purpose: {lines[leftover]}")
    return section
