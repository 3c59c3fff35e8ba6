"""The scope table comes from the contract's `required_scope` options."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool

from switchboard.server.common.scopes import SCOPE_BY_METHOD, scope_table
from switchboard.v1 import contacts_pb2, options_pb2
from tests.rawcalls import all_rpcs


def test_every_rpc_has_a_scope_in_the_contract() -> None:
    assert sorted(SCOPE_BY_METHOD) == sorted(rpc.path for rpc in all_rpcs())


def test_the_table_is_what_the_proto_option_says() -> None:
    method = contacts_pb2.DESCRIPTOR.services_by_name["ContactSync"].methods_by_name["GetContact"]
    written = method.GetOptions().Extensions[options_pb2.required_scope]
    assert written == "contacts:read"
    assert SCOPE_BY_METHOD["/switchboard.v1.ContactSync/GetContact"] == written


def _file_with_two_rpcs() -> descriptor_pb2.FileDescriptorProto:
    """`demo.v1.Demo` with `Scoped` (scope `demo:read`) and `Unscoped` (no option)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="demo/v1/demo.proto", package="demo.v1", syntax="proto3"
    )
    file.dependency.append("google/protobuf/descriptor.proto")
    file.message_type.add(name="Empty")
    service = file.service.add(name="Demo")
    scoped = service.method.add(name="Scoped", input_type=".demo.v1.Empty")
    scoped.output_type = ".demo.v1.Empty"
    scoped.options.Extensions[options_pb2.required_scope] = "demo:read"
    service.method.add(name="Unscoped", input_type=".demo.v1.Empty", output_type=".demo.v1.Empty")
    return file


def test_an_rpc_without_the_option_is_left_out_so_it_is_closed() -> None:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(_file_with_two_rpcs().SerializeToString())

    table = scope_table([pool.FindFileByName("demo/v1/demo.proto")])

    assert table == {"/demo.v1.Demo/Scoped": "demo:read"}
