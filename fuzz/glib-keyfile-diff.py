#!/usr/bin/env python3
"""Compares our GKeyFile reader with libglib's on a corpus of files.

Usage (from fuzz/): python3 glib-keyfile-diff.py DIR_OR_FILE...
Needs libglib-2.0.so.0 (a dependency of the ostree package; no headers needed) and
builds examples/keyfile_dump.rs. For each UTF-8 file without NUL, both readers must
agree on accept/reject, on every group, key and raw value, and on
g_key_file_get_boolean for every key. Exit status 1 on any difference.
"""
import ctypes
import os
import subprocess
import sys

g = ctypes.CDLL("libglib-2.0.so.0")
P = ctypes.c_void_p
g.g_key_file_new.restype = P
g.g_key_file_free.argtypes = [P]
g.g_key_file_load_from_data.argtypes = [P, ctypes.c_char_p, ctypes.c_ssize_t, ctypes.c_int, P]
g.g_key_file_get_groups.restype = ctypes.POINTER(ctypes.c_char_p)
g.g_key_file_get_groups.argtypes = [P, P]
g.g_key_file_get_keys.restype = ctypes.POINTER(ctypes.c_char_p)
g.g_key_file_get_keys.argtypes = [P, ctypes.c_char_p, P, P]
g.g_key_file_get_value.restype = ctypes.c_char_p
g.g_key_file_get_value.argtypes = [P, ctypes.c_char_p, ctypes.c_char_p, P]
g.g_key_file_get_boolean.argtypes = [P, ctypes.c_char_p, ctypes.c_char_p, P]


def strv(p):
    out, i = [], 0
    while p and p[i] is not None:
        out.append(p[i])
        i += 1
    return out


def glib_reading(path):
    data = open(path, "rb").read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if b"\0" in data:
        return None
    kf = g.g_key_file_new()
    err = P()
    if not g.g_key_file_load_from_data(kf, data, -1, 0, ctypes.byref(err)):
        return "ERR"
    items = set()
    for grp in strv(g.g_key_file_get_groups(kf, None)):
        items.add("G" + grp.hex())
        for k in strv(g.g_key_file_get_keys(kf, grp, None, None)):
            if b"[" in k:
                continue
            v = g.g_key_file_get_value(kf, grp, k, None)
            items.add(f"{grp.hex()}:{k.hex()}:{v.hex()}")
            e = P()
            b = g.g_key_file_get_boolean(kf, grp, k, ctypes.byref(e))
            items.add(f"B{grp.hex()}:{k.hex()}:" + ("E" if e.value else str(int(bool(b)))))
    g.g_key_file_free(kf)
    return "OK\t" + ",".join(sorted(items))


def main():
    files = []
    for a in sys.argv[1:]:
        if os.path.isdir(a):
            files += [os.path.join(a, f) for f in sorted(os.listdir(a))]
        else:
            files.append(a)
    env = dict(os.environ, LANG="C", LC_ALL="C")
    ours = subprocess.run(
        ["cargo", "run", "-q", "--release", "--example", "keyfile_dump", "--"] + files,
        check=True, capture_output=True, text=True, env=env,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout
    ours = dict(line.split("\t", 1) for line in ours.splitlines())
    compared = differ = 0
    for f in files:
        theirs = glib_reading(f)
        if theirs is None:
            continue
        compared += 1
        if ours.get(f) != theirs:
            differ += 1
            print(f"DIFFER {f}: glib {theirs!r} ours {ours.get(f)!r}")
    print(f"compared {compared} files, {differ} differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
