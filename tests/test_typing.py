"""grpc ships its types (PEP 561, py.typed): mypy --strict accepts programs
using the public API (tests/typing/program.py, examples/), and the stubs
grpcio-tools generates have no error that comes from the grpc package.

mypy runs on the installed package, as a user's mypy would."""

import os
import re
import shutil
import subprocess
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)
EXAMPLES = os.path.join(ROOT, "examples")
MYPY_TIMEOUT = 300  # seconds per run; a cold cache checks the whole package

pytest.importorskip("mypy", reason="mypy is in the test dependencies (make install)")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("mypy-cache"))


def mypy(cwd, cache_dir, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", cache_dir, "--no-error-summary",
         "--hide-error-context", *args],
        cwd=cwd, capture_output=True, text=True, timeout=MYPY_TIMEOUT)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if ": error:" in line]


def test_py_typed_is_installed():
    import grpc

    assert os.path.isfile(os.path.join(os.path.dirname(grpc.__file__), "py.typed"))


def test_strict_program_using_the_api_type_checks(cache_dir):
    errors = mypy(os.path.join(TESTS_DIR, "typing"), cache_dir, "--strict", "program.py")
    assert errors == []


@pytest.mark.parametrize("example", ["helloworld", "route_guide"])
def test_examples_type_check_strictly(cache_dir, example):
    errors = mypy(os.path.join(EXAMPLES, example), cache_dir,
                  "--config-file", os.path.join(EXAMPLES, "mypy.ini"), ".")
    assert errors == []


def test_mistakes_against_the_api_are_caught(cache_dir, tmp_path):
    (tmp_path / "wrong.py").write_text(
        "import grpc\n"
        "channel = grpc.insecure_channel(42)\n"
        "server: grpc.Server = grpc.insecure_channel('x')\n"
        "code: int = grpc.StatusCode.OK\n"
        "grpc.ssl_channel_credentials(root_certificates='text')\n")
    errors = mypy(str(tmp_path), cache_dir, "--strict", "wrong.py")
    assert [int(e.split(":")[1]) for e in errors] == [2, 3, 4, 5], errors


def test_generated_stubs_have_no_errors_from_grpc(cache_dir, tmp_path):
    # mypy --strict on grpcio-tools' output as it is: it has no annotations
    # of its own (no-untyped-def) and protoc's .pyi uses bare Mapping
    # (type-arg); anything else would come from our package (grpcio with
    # types-grpcio gives the same errors, and one more).
    for name in ("helloworld/helloworld_pb2", "route_guide/route_guide_pb2"):
        for suffix in (".py", ".pyi", "_grpc.py"):
            shutil.copy(os.path.join(EXAMPLES, name + suffix), tmp_path)
    errors = mypy(str(tmp_path), cache_dir, "--strict",
                  "helloworld_pb2_grpc.py", "route_guide_pb2_grpc.py")
    # (mypy 2 says "type arguments"; mypy 1.19, the newest for Python 3.9,
    # says "type parameters" for the same error.)
    own = re.compile(r"^\w+_pb2(_grpc\.py:\d+: error: Function is missing a type annotation"
                     r"|\.pyi:\d+: error: Missing type (arguments|parameters) for generic type"
                     r" \"Mapping\")")
    assert [e for e in errors if not own.match(e)] == []
    assert errors, "mypy found nothing at all: did it check the stubs?"
