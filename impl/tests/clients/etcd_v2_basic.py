"""Drives python3-etcd (the etcd v2 HTTP client) through its basic calls against the
endpoint given as HOST PORT (a server started with --enable-v2), printing one line per
observation with store indexes relative to the first write. impl/tests/clients.rs compares
what it prints with what it prints against etcd 3.4.23."""
import json
import sys
import threading
import time

import etcd

host, port = sys.argv[1], int(sys.argv[2])
client = etcd.Client(host=host, port=port, allow_reconnect=False, read_timeout=10)


def show(label, value):
    print(f"{label}: {value!r}")


first = client.write("/testdir/testkey", "Hello world")
base = first.modifiedIndex


def rel(index):
    return None if index is None else index - base


show("write", (first.key, first.value, first.action, first.dir, first.ttl))
read = client.read("/testdir/testkey")
show("read", (read.key, read.value, rel(read.createdIndex), rel(read.modifiedIndex)))
show("get", client.get("/testdir/testkey").value)
try:
    client.read("/testdir/missing")
except etcd.EtcdKeyNotFound as error:
    show("read missing", type(error).__name__)
try:
    client.write("/testdir/testkey", "again", prevExist=False)
except etcd.EtcdAlreadyExist as error:
    show("mk existing", type(error).__name__)
updated = client.write("/testdir/testkey", "Hello", prevValue="Hello world")
show("compare and swap", (updated.value, updated._prev_node.value, rel(updated.modifiedIndex)))
try:
    client.write("/testdir/testkey", "x", prevValue="wrong")
except etcd.EtcdCompareFailed as error:
    show("failed swap", type(error).__name__)
client.write("/testdir/other", "2")
client.write("/testdir/sub/deep", "3")
listing = client.read("/testdir", recursive=True, sorted=True)
show("recursive read", [(c.key, c.value, c.dir) for c in listing.leaves])
show("children", sorted(c.key for c in client.read("/testdir").children))
made = client.write("/dir1", None, dir=True)
show("mkdir", (made.key, made.dir))
try:
    client.delete("/testdir")
except etcd.EtcdNotFile as error:
    show("delete dir without dir=True", type(error).__name__)
queued = [client.write("/queue", v, append=True) for v in ("s1", "s2")]
show("in-order keys", [q.key == "/queue/%020d" % q.createdIndex for q in queued])
show("ttl key", client.write("/ttlkey", "tmp", ttl=100).ttl)

# a watch waiting for the next change, and a recursive one
result = {}


def watch(name, key, **kwargs):
    node = client.read(key, wait=True, timeout=10, **kwargs)
    result[name] = (node.action, node.key, node.value)


watchers = [
    threading.Thread(target=watch, args=("key", "/testdir/testkey")),
    threading.Thread(target=watch, args=("recursive", "/testdir"), kwargs={"recursive": True}),
]
for thread in watchers:
    thread.start()
# wait until both watchers wait, so that the write below is the change they see
for _ in range(500):
    if json.loads(client.api_execute("/v2/stats/store", "GET").data)["watchers"] >= 2:
        break
    time.sleep(0.02)
client.write("/testdir/testkey", "Hello watch")
for thread in watchers:
    thread.join(15)
show("watch", result.get("key"))
show("watch recursive", result.get("recursive"))
at = client.read("/testdir/testkey", wait=True, waitIndex=base + 1)
show("watch from index", (at.action, at.value, rel(at.modifiedIndex)))

deleted = client.delete("/testdir/testkey")
show("delete", (deleted.action, deleted._prev_node.value))
show("delete recursive", client.delete("/testdir", recursive=True).action)
show("delete dir", client.delete("/dir1", dir=True).action)
show("machines", len(client.machines))
show("leader name", client.leader["name"])
show("members", [m["name"] for m in client.members.values()])
print("done")
