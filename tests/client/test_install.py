"""libtombo as users get it: `cmake --install` into a temporary prefix, then the tutorial subscriber
compiled outside the tree with `pkg-config --cflags --libs tombo` (shared) and against libtombo.a
(static), and run against the broker."""
import os
import re
import subprocess

import pytest

from conftest import BUILD, ROOT, client_env


def sanitizer_flags():
    cache = os.path.join(BUILD, "CMakeCache.txt")
    text = open(cache).read() if os.path.exists(cache) else ""
    if re.search(r"^TOMBO_SANITIZE:BOOL=ON", text, re.M):
        return ["-fsanitize=address,undefined"]
    if re.search(r"^TOMBO_TSAN:BOOL=ON", text, re.M):
        return ["-fsanitize=thread"]
    return []


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    p = tmp_path_factory.mktemp("prefix")
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(p)], check=True, timeout=120,
                   stdout=subprocess.DEVNULL)
    return p


@pytest.mark.parametrize("link", ["shared", "static"])
def test_installed_library_builds_the_tutorial(broker, prefix, link, tmp_path):
    assert (prefix / "include" / "tombo" / "client.h").exists()
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    cflags = subprocess.run(["pkg-config", "--cflags", "tombo"], env=env, capture_output=True, text=True,
                            check=True).stdout.split()
    if link == "shared":
        libs = subprocess.run(["pkg-config", "--libs", "tombo"], env=env, capture_output=True, text=True,
                              check=True).stdout.split() + ["-Wl,-rpath," + str(prefix / "lib")]
    else:
        # libtombo.a carries its TLS code; OpenSSL is linked by the application (tombo.pc's
        # Libs.private says so for `pkg-config --static`).
        static = subprocess.run(["pkg-config", "--static", "--libs-only-l", "tombo"], env=env, capture_output=True,
                                text=True, check=True).stdout.split()
        libs = [str(prefix / "lib" / "libtombo.a")] + [f for f in static if f != "-ltombo"]
    exe = tmp_path / "subscriber"
    subprocess.run(["gcc", "-Wall", "-o", str(exe), os.path.join(ROOT, "examples", "subscriber.c")] + cflags + libs +
                   sanitizer_flags(), check=True, timeout=120)
    p = subprocess.Popen([str(exe), "127.0.0.1", str(broker.port)], stdout=subprocess.PIPE, env=client_env())
    try:
        assert p.stdout.readline().decode().strip() == "Connected with result code 0"
    finally:
        p.kill()
        p.wait()
