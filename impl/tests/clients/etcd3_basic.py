"""Drives python3-etcd3 (the etcd v3 gRPC client) through its basic calls against the
endpoint given as HOST PORT, printing one line per observation. impl/tests/clients.rs
compares what it prints with what it prints against etcd 3.4.23."""
import sys
import threading

import etcd3

host, port = sys.argv[1], int(sys.argv[2])
client = etcd3.client(host=host, port=port, timeout=10)


def show(label, value):
    print(f"{label}: {value!r}")


show("status.version", client.status().version)
client.put("foo", "Hello World!")
value, meta = client.get("foo")
show("get foo", (value, meta.key, meta.version, meta.create_revision == meta.mod_revision))
show("get missing", client.get("missing"))
for key, val in [("web1", "value1"), ("web2", "value2"), ("web3", "value3")]:
    client.put(key, val)
show("get_prefix web", [(v, m.key) for v, m in client.get_prefix("web")])
show("get_range web1..web3", [(v, m.key) for v, m in client.get_range("web1", "web3")])
show("get_all count", len(list(client.get_all())))
show("put prev_kv", client.put("web1", "changed", prev_kv=True).prev_kv.value)
show("delete foo", client.delete("foo"))
show("delete foo again", client.delete("foo"))
show("delete_prefix web", client.delete_prefix("web").deleted)

# transaction: the tutorial's "if user1 == bad then delete it else set it to good"
client.put("user1", "bad")
succeeded, responses = client.transaction(
    compare=[client.transactions.value("user1") == "bad"],
    success=[client.transactions.delete("user1")],
    failure=[client.transactions.put("user1", "good")],
)
show("txn bad", (succeeded, [type(r).__name__ for r in responses]))
succeeded, responses = client.transaction(
    compare=[client.transactions.value("user1") == "bad"],
    success=[client.transactions.delete("user1")],
    failure=[client.transactions.put("user1", "good"), client.transactions.get("user1")],
)
show("txn again", (succeeded, len(responses)))
show("user1", client.get("user1")[0])
show("replace", (client.replace("user1", "good", "better"), client.replace("user1", "good", "x")))

# leases
lease = client.lease(300)
show("lease ttl", lease.granted_ttl)
client.put("sample", "value", lease=lease)
show("lease keys", lease.keys)
show("remaining <= 300", 0 < lease.remaining_ttl <= 300)
refreshed = list(lease.refresh())
show("refresh ttl", refreshed[0].TTL)
show("get sample lease", client.get("sample")[1].lease_id == lease.id)
lease.revoke()
show("get sample after revoke", client.get("sample"))

# watch: a live event and a prefix watch
events = []
done = threading.Event()


def on_event(response):
    for event in response.events:
        events.append((type(event).__name__, event.key, event.value))
    if len(events) >= 3:
        done.set()


watch_id = client.add_watch_prefix_callback("stock", on_event)
client.put("stock1", "10")
client.put("stock2", "20")
client.delete("stock1")
show("watch events", (done.wait(10), events))
client.cancel_watch(watch_id)

iterator, cancel = client.watch("single")
client.put("single", "1")
for event in iterator:
    show("watch single", (type(event).__name__, event.key, event.value))
    break
cancel()

# locks and members
lock = client.lock("mutex2", ttl=30)
show("lock acquire", lock.acquire(timeout=5))
show("lock owned", lock.is_acquired())
# (a second acquire of a held lock is not tried: Debian's python3-etcd3 0.12 fails in its
# retry loop with the packaged tenacity, against etcd as against oxetcd.)
show("lock key exists", client.get(lock.key)[0] == lock.uuid)
show("lock release", lock.release())
show("members", [(m.name, len(m.peer_urls), len(m.client_urls)) for m in client.members])
print("done")
