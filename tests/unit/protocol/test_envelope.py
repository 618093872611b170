from __future__ import annotations

import json

import pytest

from airflow_voicetrack.protocol import ResponseFormatError, parse_message, parse_page, parse_token


def envelope(page=0, size=2, total=5, content=None, **override):
    if content is None:
        count = max(0, min(size, total - page * size))
        content = [{"messageId": f"m{page * size + i}"} for i in range(count)]
    body = {
        "content": content,
        "number": page,
        "size": size,
        "numberOfElements": len(content),
        "totalElements": total,
        "totalPages": -(-total // size),
        "first": page == 0,
        "last": page >= -(-total // size) - 1,
    }
    body.update(override)
    return json.dumps(body).encode()


def test_valid_page_is_read():
    page = parse_page(envelope(page=2), page=2, size=2)
    assert [m["messageId"] for m in page.content] == ["m4"]
    assert (page.number, page.total_elements, page.total_pages) == (2, 5, 3)


def test_empty_result_is_one_empty_page():
    page = parse_page(envelope(total=0), page=0, size=2)
    assert (page.content, page.total_pages) == ([], 0)


def test_unknown_fields_are_kept():
    page = parse_page(envelope(content=[{"messageId": "a", "new": 1}], total=1), page=0, size=2)
    assert page.content == [{"messageId": "a", "new": 1}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not valid JSON"),
        (b'{"content": [', "not valid JSON"),
        (b"[]", "a JSON list, not an object"),
        (envelope(content=[{"id": "x"}, {"messageId": "y"}]), "string messageId"),
        (envelope(numberOfElements=3), "numberOfElements 3 but 2 items"),
        (envelope(number=1), "page 1 returned for page 0"),
        (envelope(size=3), "size 3 returned for size 2"),
        (envelope(totalPages=9), "totalPages 9 for totalElements 5"),
        (envelope(totalElements=-1), "invalid 'totalElements'"),
        (envelope(content=[{"messageId": "a"}]), r"1 items on page 0 of 3 \(expected 2\)"),
    ],
)
def test_malformed_or_contradicting_pages_are_rejected(body, message):
    with pytest.raises(ResponseFormatError, match=message):
        parse_page(body, page=0, size=2)


def test_message_needs_a_message_id():
    assert parse_message(b'{"messageId": "m"}') == {"messageId": "m"}
    with pytest.raises(ResponseFormatError):
        parse_message(b'{"id": "m"}')


def test_token_is_renewed_before_it_expires():
    token = parse_token(b'{"access_token": "t", "expires_in": 3600}', now=100.0)
    assert token.is_fresh(100.0 + 3539) and not token.is_fresh(100.0 + 3540)


def test_short_lived_token_is_renewed_at_nine_tenths():
    token = parse_token(b'{"access_token": "t", "expires_in": 10}', now=0.0)
    assert token.is_fresh(8.9) and not token.is_fresh(9.0)


@pytest.mark.parametrize("body", [b"{}", b'{"access_token": ""}', b'{"access_token": "t", "expires_in": 0}'])
def test_unusable_token_response_is_rejected(body):
    with pytest.raises(ResponseFormatError):
        parse_token(body, now=0.0)


def test_token_repr_hides_the_value():
    assert "t0ken" not in repr(parse_token(b'{"access_token": "t0ken", "expires_in": 10}', now=0.0))


def raw_ids(body, **kw):
    page = parse_page(body, raw=True, **kw)
    return page, [message.message_id for message in page.content]


def test_raw_page_keeps_each_message_as_the_bytes_sent():
    content = [
        {"messageId": "a", "status": {"status": "Failed"}, "new": [1, {"x": None}]},
        {"messageId": "b"},
    ]
    body = envelope(content=content, total=2)
    page, ids = raw_ids(body, page=0, size=2)
    assert ids == page.message_ids() == ["a", "b"]
    assert [bytes(m.raw) for m in page.content] == [json.dumps(item).encode() for item in content]
    assert [m.status for m in page.content] == ["Failed", None]


def test_raw_message_with_a_line_break_is_reencoded_on_one_line():
    body = b'{"content": [{"messageId": "a",\n "text": "line\\nbreak"}, {"messageId": "b"}], "number": 0, '
    body += b'"size": 2, "numberOfElements": 2, "totalElements": 2, "totalPages": 1}'
    page, _ = raw_ids(body, page=0, size=2)
    assert [bytes(m.raw) for m in page.content] == [
        b'{"messageId":"a","text":"line\\nbreak"}',
        b'{"messageId": "b"}',  # only the message that held a line break is re-encoded
    ]
    assert json.loads(bytes(page.content[0].raw))["text"] == "line\nbreak"


@pytest.mark.parametrize(
    "content",
    [[{"id": "a"}], [{"messageId": 7}], "nope", [["messageId"]]],
    ids=["no messageId", "numeric messageId", "not a list", "not an object"],
)
def test_raw_page_without_message_ids_is_a_format_error(content):
    with pytest.raises(ResponseFormatError, match="messageId"):
        parse_page(envelope(content=content, total=1), page=0, size=2, raw=True)


def test_raw_page_envelope_is_checked_like_a_decoded_one():
    with pytest.raises(ResponseFormatError, match="contradicting page envelope"):
        parse_page(envelope(totalPages=9), page=0, size=2, raw=True)
