"""The route_guide client: calls each of the four methods once.

Usage: python route_guide_client.py [--port PORT]

Connects to 127.0.0.1:PORT (default 50051) and prints what it gets back.
"""

import argparse
import logging
import random
from typing import Iterator, List, Optional, Sequence

import grpc

import route_guide_pb2
import route_guide_pb2_grpc
import route_guide_resources

TIMEOUT = 10


def make_route_note(message: str, latitude: int, longitude: int) -> route_guide_pb2.RouteNote:
    return route_guide_pb2.RouteNote(
        message=message,
        location=route_guide_pb2.Point(latitude=latitude, longitude=longitude),
    )


def guide_get_one_feature(
    stub: route_guide_pb2_grpc.RouteGuideStub,
    point: route_guide_pb2.Point,
) -> route_guide_pb2.Feature:
    feature: route_guide_pb2.Feature = stub.GetFeature(point, timeout=TIMEOUT)
    if not feature.HasField("location"):
        print("Server returned incomplete feature")
        return feature
    if feature.name:
        print(f"Feature called {feature.name!r} at {point.latitude}, {point.longitude}")
    else:
        print(f"Found no feature at {point.latitude}, {point.longitude}")
    return feature


def guide_get_feature(stub: route_guide_pb2_grpc.RouteGuideStub) -> None:
    features = route_guide_resources.read_route_guide_database()
    guide_get_one_feature(stub, features[0].location)
    guide_get_one_feature(stub, route_guide_pb2.Point(latitude=0, longitude=0))


def guide_list_features(
    stub: route_guide_pb2_grpc.RouteGuideStub,
) -> List[route_guide_pb2.Feature]:
    rectangle = route_guide_pb2.Rectangle(
        lo=route_guide_pb2.Point(latitude=400000000, longitude=-750000000),
        hi=route_guide_pb2.Point(latitude=420000000, longitude=-730000000),
    )
    print("Looking for features between 40, -75 and 42, -73")
    features = list(stub.ListFeatures(rectangle, timeout=TIMEOUT))
    for feature in features:
        print(f"Feature called {feature.name!r} at {feature.location.latitude}, "
              f"{feature.location.longitude}")
    return features


def generate_route(
    feature_list: Sequence[route_guide_pb2.Feature],
    count: int = 10,
    seed: Optional[int] = None,
) -> Iterator[route_guide_pb2.Point]:
    rng = random.Random(seed)
    for _ in range(count):
        feature = rng.choice(feature_list)
        print(f"Visiting point {feature.location.latitude}, {feature.location.longitude}")
        yield feature.location


def guide_record_route(stub: route_guide_pb2_grpc.RouteGuideStub) -> route_guide_pb2.RouteSummary:
    features = route_guide_resources.read_route_guide_database()
    summary: route_guide_pb2.RouteSummary = stub.RecordRoute(generate_route(features), timeout=TIMEOUT)
    print(f"Finished trip with {summary.point_count} points")
    print(f"Passed {summary.feature_count} features")
    print(f"Travelled {summary.distance} meters")
    print(f"It took {summary.elapsed_time} seconds")
    return summary


def generate_messages() -> Iterator[route_guide_pb2.RouteNote]:
    messages = [
        make_route_note("First message", 0, 0),
        make_route_note("Second message", 0, 1),
        make_route_note("Third message", 1, 0),
        make_route_note("Fourth message", 0, 0),
        make_route_note("Fifth message", 1, 0),
    ]
    for message in messages:
        print(f"Sending {message.message} at {message.location.latitude}, "
              f"{message.location.longitude}")
        yield message


def guide_route_chat(stub: route_guide_pb2_grpc.RouteGuideStub) -> List[route_guide_pb2.RouteNote]:
    notes = list(stub.RouteChat(generate_messages(), timeout=TIMEOUT))
    for note in notes:
        print(f"Received message {note.message} at {note.location.latitude}, "
              f"{note.location.longitude}")
    return notes


def run(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = route_guide_pb2_grpc.RouteGuideStub(channel)
        print("-------------- GetFeature --------------")
        guide_get_feature(stub)
        print("-------------- ListFeatures --------------")
        guide_list_features(stub)
        print("-------------- RecordRoute --------------")
        guide_record_route(stub)
        print("-------------- RouteChat --------------")
        guide_route_chat(stub)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n")[0])
    parser.add_argument("--port", type=int, default=50051,
                        help="server port on 127.0.0.1 (default 50051)")
    args = parser.parse_args()
    logging.basicConfig()
    run(args.port)


if __name__ == "__main__":
    main()
