"""SDK proof: generate a Python client from proto/ with grpcio-tools and call a running latch-server.

Usage: smoke.py --server HOST:PORT --token-file FILE

Prints one JSON object: the health status, the flow applied through the structured API, and the
names ListFlows returned. The Rust test tests/tests/sdk_python.rs runs this and checks the output.
"""

import argparse
import importlib.resources
import json
import pathlib
import sys
import tempfile

from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parents[3]


def generate(out: pathlib.Path) -> None:
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    protos = sorted(str(p.relative_to(REPO / "proto")) for p in (REPO / "proto/latch/v1").glob("*.proto"))
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{REPO / 'proto'}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ])
    if code != 0:
        sys.exit(f"protoc failed with {code}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--token-file", required=True)
    args = parser.parse_args()
    token = pathlib.Path(args.token_file).read_text().strip()

    out = pathlib.Path(tempfile.mkdtemp(prefix="latch-sdk-"))
    generate(out)
    sys.path.insert(0, str(out))

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from google.protobuf import duration_pb2
    from latch.v1 import access_flow_pb2 as flows
    from latch.v1 import access_flow_pb2_grpc as flows_grpc

    channel = grpc.insecure_channel(args.server)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)

    auth = (("authorization", f"Bearer {token}"),)
    stub = flows_grpc.AccessFlowServiceStub(channel)
    spec = flows.AccessFlowSpec(
        name="sdk-python",
        kind=flows.FLOW_KIND_SELF_SERVE,
        requesters=flows.Requesters(any_of=[flows.Requester(group="engineering")]),
        targets=[flows.Target(integration="pg-main", resource_types=["postgres.database"], permissions=["read"])],
        duration=flows.DurationPolicy(
            default_duration=duration_pb2.Duration(seconds=3600), max=duration_pb2.Duration(seconds=7200)
        ),
        approval=flows.ApprovalPolicy(
            mode=flows.APPROVAL_MODE_ANY_OF,
            groups=[flows.ApproverGroup(approvers=[flows.Approver(relative=flows.RELATIVE_APPROVER_MANAGER)], min=1)],
        ),
    )
    applied = stub.ApplyFlows(
        flows.ApplyFlowsRequest(source=flows.FlowSource(specs=flows.AccessFlowSpecList(flows=[spec]))),
        metadata=auth,
        timeout=10,
    )
    listed = stub.ListFlows(flows.ListFlowsRequest(), metadata=auth, timeout=10)
    try:
        stub.ListFlows(flows.ListFlowsRequest(), timeout=10)
        unauthenticated = None
    except grpc.RpcError as err:
        unauthenticated = err.code().name

    print(json.dumps({
        "health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
        "applied": [{"name": f.name, "version": f.version, "outcome": flows.ApplyOutcome.Name(f.outcome)} for f in applied.flows],
        "listed": [f.spec.name for f in listed.flows],
        "without_token": unauthenticated,
    }))


if __name__ == "__main__":
    main()
