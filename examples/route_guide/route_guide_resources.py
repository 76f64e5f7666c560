"""Loads the route_guide example's feature database (route_guide_db.json).

The database is a small made-up map: named places (and a few unnamed points)
on a grid around 40 N, 74.5 W, in the E7 representation route_guide.proto uses.
"""

import json
import os
from typing import List

import route_guide_pb2

DB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "route_guide_db.json")


def read_route_guide_database(path: str = DB_PATH) -> List[route_guide_pb2.Feature]:
    """Returns the features in the database as route_guide_pb2.Feature messages."""
    with open(path) as f:
        return [
            route_guide_pb2.Feature(
                name=item["name"],
                location=route_guide_pb2.Point(
                    latitude=item["location"]["latitude"],
                    longitude=item["location"]["longitude"],
                ),
            )
            for item in json.load(f)
        ]
