"""Answering with encoded bytes gives exactly what encoding the response message gives."""

from __future__ import annotations

import pytest

from switchboard.server.api.decoding import message_field
from switchboard.v1 import contacts_pb2


# Sizes around each varint length boundary (1, 2, 3 and 4 bytes of length).
@pytest.mark.parametrize("size", [0, 1, 120, 127, 128, 16_383, 16_384, 2_097_152])
def test_a_wrapped_contact_encodes_like_the_response_message(size: int) -> None:
    contact = contacts_pb2.Contact(id="c_01M847PNZXWYG14T8DV5Y61M89", first_name="x" * size)
    wrapped = message_field(1, contact.SerializeToString())
    assert wrapped == contacts_pb2.GetContactResponse(contact=contact).SerializeToString()
    assert contacts_pb2.GetContactResponse.FromString(wrapped).contact == contact
