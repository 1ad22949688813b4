"""Property tests (hypothesis) of XML building and parsing: any text XML 1.0 can carry round-trips through a
message body and a message list."""

from hypothesis import given
from hypothesis import strategies as st

from aioqueue._encoding import check_text
from aioqueue._message_list import message_body, parse_messages
from aioqueue._xml import parse

# characters XML 1.0 can carry
xml_chars = st.characters(
    codec="utf-8",  # no lone surrogates
    exclude_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF])),
)
xml_text = st.text(xml_chars, max_size=300)


@given(xml_text)
def test_message_body_round_trips_any_xml_text(text):
    check_text(text)
    assert (parse(message_body(text)).findtext("MessageText") or "") == text


@given(xml_text)
def test_message_lists_round_trip(text):
    escaped = message_body(text).decode()[len("<QueueMessage><MessageText>") : -len("</MessageText></QueueMessage>")]
    entry = f"<QueueMessage><MessageId>id</MessageId><MessageText>{escaped}</MessageText></QueueMessage>"
    [parsed] = parse_messages(f"<QueueMessagesList>{entry}</QueueMessagesList>".encode())
    assert parsed.text == text
