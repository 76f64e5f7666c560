"""The route_guide server: one method of each RPC shape.

Usage: python route_guide_server.py [--port PORT]

PORT defaults to 50051; 0 lets the kernel pick a free one. The server prints
the port it bound and listens on loopback only.
"""

import argparse
from concurrent import futures
import logging
import math
import time
from typing import Iterator, List, Optional, Sequence

import grpc

import route_guide_pb2
import route_guide_pb2_grpc
import route_guide_resources


def get_feature(
    features: Sequence[route_guide_pb2.Feature],
    point: route_guide_pb2.Point,
) -> Optional[route_guide_pb2.Feature]:
    """The feature at point, or None."""
    for feature in features:
        if feature.location == point:
            return feature
    return None


def get_distance(start: route_guide_pb2.Point, end: route_guide_pb2.Point) -> float:
    """Great-circle distance in metres between two points (haversine)."""
    coord_factor = 1e7
    lat_1, lat_2 = start.latitude / coord_factor, end.latitude / coord_factor
    lon_1, lon_2 = start.longitude / coord_factor, end.longitude / coord_factor
    phi_1, phi_2 = math.radians(lat_1), math.radians(lat_2)
    delta_phi = math.radians(lat_2 - lat_1)
    delta_lambda = math.radians(lon_2 - lon_1)
    a = (math.sin(delta_phi / 2) ** 2
         + math.cos(phi_1) * math.cos(phi_2) * math.sin(delta_lambda / 2) ** 2)
    earth_radius = 6371000
    return earth_radius * 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))


def in_rectangle(point: route_guide_pb2.Point, rectangle: route_guide_pb2.Rectangle) -> bool:
    lo, hi = rectangle.lo, rectangle.hi
    return (min(lo.latitude, hi.latitude) <= point.latitude <= max(lo.latitude, hi.latitude)
            and min(lo.longitude, hi.longitude) <= point.longitude
            <= max(lo.longitude, hi.longitude))


class RouteGuideServicer(route_guide_pb2_grpc.RouteGuideServicer):
    """Answers from the feature database."""

    def __init__(self, features: Optional[List[route_guide_pb2.Feature]] = None) -> None:
        self.db = (route_guide_resources.read_route_guide_database()
                   if features is None else features)

    def GetFeature(
        self,
        request: route_guide_pb2.Point,
        context: grpc.ServicerContext,
    ) -> route_guide_pb2.Feature:
        feature = get_feature(self.db, request)
        if feature is None:
            return route_guide_pb2.Feature(name="", location=request)
        return feature

    def ListFeatures(
        self,
        request: route_guide_pb2.Rectangle,
        context: grpc.ServicerContext,
    ) -> Iterator[route_guide_pb2.Feature]:
        for feature in self.db:
            if feature.name and in_rectangle(feature.location, request):
                yield feature

    def RecordRoute(
        self,
        request_iterator: Iterator[route_guide_pb2.Point],
        context: grpc.ServicerContext,
    ) -> route_guide_pb2.RouteSummary:
        point_count = feature_count = 0
        distance = 0.0
        prev_point: Optional[route_guide_pb2.Point] = None
        start_time = time.monotonic()
        for point in request_iterator:
            point_count += 1
            feature = get_feature(self.db, point)
            if feature is not None and feature.name:
                feature_count += 1
            if prev_point is not None:
                distance += get_distance(prev_point, point)
            prev_point = point
        return route_guide_pb2.RouteSummary(
            point_count=point_count,
            feature_count=feature_count,
            distance=int(distance),
            elapsed_time=int(time.monotonic() - start_time),
        )

    def RouteChat(
        self,
        request_iterator: Iterator[route_guide_pb2.RouteNote],
        context: grpc.ServicerContext,
    ) -> Iterator[route_guide_pb2.RouteNote]:
        prev_notes: List[route_guide_pb2.RouteNote] = []
        for new_note in request_iterator:
            for prev_note in prev_notes:
                if prev_note.location == new_note.location:
                    yield prev_note
            prev_notes.append(new_note)


def serve(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    route_guide_pb2_grpc.add_RouteGuideServicer_to_server(RouteGuideServicer(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"Server started, listening on 127.0.0.1:{bound}", flush=True)
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n")[0])
    parser.add_argument("--port", type=int, default=50051,
                        help="port to listen on, 0 for any free port (default 50051)")
    args = parser.parse_args()
    logging.basicConfig()
    serve(args.port)


if __name__ == "__main__":
    main()
