"""check_exports.py -- libtombo.so exports its public API and nothing else.

Usage: check_exports.py LIBTOMBO_SO INCLUDE_DIR. Compares the functions declared in INCLUDE_DIR/tombo/*.h
with the symbols `nm -D --defined-only` lists for the library; run by ctest (tests/client/CMakeLists.txt).
Exit 0 when they are the same set, 1 with the differences otherwise.
"""
import glob
import os
import re
import subprocess
import sys


def public_api(include_dir):
    """Names of the functions declared in the public headers (not macros, not callback typedefs)."""
    names = set()
    for path in sorted(glob.glob(os.path.join(include_dir, "tombo", "*.h"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)  # directives, continued too
        # A declaration's name is an identifier directly followed by "(": a callback typedef's name
        # is followed by ")" ("(*tombo_on_log_cb)(...)") and parameter names by "," or ")".
        names.update(re.findall(r"\b(tombo_\w+)\s*\(", text))
    return names


def exported(lib):
    """Defined dynamic symbols, without the reserved names (leading '_') that the toolchain and the
    sanitizers add (_init, __odr_asan.*, ...): they are not the library's to choose."""
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        name = line.split()[-1].split("@")[0]
        if not name.startswith("_"):
            names.add(name)
    return names


def main():
    lib, include_dir = sys.argv[1], sys.argv[2]
    api, syms = public_api(include_dir), exported(lib)
    if not api:
        print("no functions found in %s/tombo/*.h" % include_dir)
        return 1
    extra, missing = sorted(syms - api), sorted(api - syms)
    for name in extra:
        print("exported but not in the public headers: %s" % name)
    for name in missing:
        print("declared in the public headers but not exported: %s" % name)
    if extra or missing:
        return 1
    print("%s exports the %d functions of %s/tombo/*.h" % (os.path.basename(lib), len(api), include_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
