from switchboard.v1 import events_pb2 as _events_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SealedEvent(_message.Message):
    __slots__ = ("clear", "key_id", "nonce", "ciphertext")
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    clear: _events_pb2.Event
    key_id: bytes
    nonce: bytes
    ciphertext: bytes
    def __init__(self, clear: _Optional[_Union[_events_pb2.Event, _Mapping]] = ..., key_id: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class SealedEventView(_message.Message):
    __slots__ = ("clear", "key_id", "nonce", "ciphertext")
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    clear: bytes
    key_id: bytes
    nonce: bytes
    ciphertext: bytes
    def __init__(self, clear: _Optional[bytes] = ..., key_id: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...
