"""gRPC health checks (grpc.health.v1.Health) through python3-grpcio, the gRPC library
python3-etcd3 depends on. The messages are encoded by hand (field 1 of each message):
HealthCheckRequest.service is a string, HealthCheckResponse.status an enum.

Usage: grpc_health.py HOST PORT; prints one line per observation."""

import sys

import grpc


def request(service):
    data = service.encode()
    return b"\x0a" + bytes([len(data)]) + data if data else b""


def status(response):
    names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    if response == b"":
        return names[0]
    assert response[0] == 0x08, response
    return names.get(response[1], str(response[1]))


def main():
    target = "%s:%s" % (sys.argv[1], sys.argv[2])
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        print("check '':", status(check(request(""), timeout=5)))
        for service in ["etcdserverpb.KV", "no.such.Service"]:
            try:
                print("check %r:" % service, status(check(request(service), timeout=5)))
            except grpc.RpcError as error:
                print("check %r: %s %s" % (service, error.code().name, error.details()))
        for service in ["", "no.such.Service"]:
            stream = watch(request(service), timeout=10)
            print("watch %r first:" % service, status(next(stream)))
            stream.cancel()
        # The stream stays open without a change: no second answer within a second.
        stream = watch(request(""), timeout=1)
        next(stream)
        try:
            next(stream)
            print("watch '': a second answer")
        except grpc.RpcError as error:
            print("watch '' after 1 s:", error.code().name)


if __name__ == "__main__":
    main()
