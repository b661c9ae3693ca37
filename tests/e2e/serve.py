"""Serve the e2e services in their own process:
`serve.py STUB_DIR ADDRESS[,ADDRESS...] [options JSON [harness JSON]]`.

Serves AllTypes, and Streams, MoreTypes and Retries too when their stubs are in
STUB_DIR. Prints the bound addresses on stdout (one line, separated by spaces, in the
order given), then serves until killed or stdin closes. The options go to `Server`; the
harness JSON sets up the process for hardening tests:
  "nofile": N     lower the soft RLIMIT_NOFILE to N before the Server is made
  "gc": false     disable the cyclic garbage collector, so only reference counting frees
  "debug": true   also serve `Debug.stats()`: live _Connection objects and more
  "tls": {"cert": PEM, "key": PEM, "client_ca": PEM}
                  pass `tls=` an SSLContext serving that certificate; with
                  "client_ca", clients must present a certificate it signed (mTLS)
  "etcd": {"url": URL, "ttl": S, "prefix": P}
                  pass `registry=` an EtcdRegistry(URL, ttl=S, prefix=P), closed at the end
  "standby": true print "standby" once everything is imported, and bind only when a
                  line arrives on stdin: a restart that takes milliseconds, not a
                  Python start-up (the address must then name a port, not 0)
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
from typing import Any

stub_dir, address = sys.argv[1], sys.argv[2]
options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
harness = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
sys.path[:0] = [stub_dir, os.path.dirname(os.path.abspath(__file__))]

if "nofile" in harness:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (harness["nofile"], hard))
if harness.get("gc", True) is False:
    gc.disable()

from e2e_alltypes_server import register_all_types  # type: ignore[import-not-found]  # noqa: E402
from impl import AllTypesImpl  # noqa: E402

from gopherpipe_runtime import Server  # noqa: E402
from gopherpipe_runtime import server as server_module  # noqa: E402
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef  # noqa: E402

if "tls" in harness:
    import ssl

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(harness["tls"]["cert"], harness["tls"]["key"])
    if harness["tls"].get("client_ca"):
        tls.load_verify_locations(harness["tls"]["client_ca"])
        tls.verify_mode = ssl.CERT_REQUIRED
    options["tls"] = tls

if "etcd" in harness:
    from gopherpipe_runtime.discovery import EtcdRegistry

    etcd = harness["etcd"]
    options["registry"] = EtcdRegistry(
        etcd["url"], ttl=etcd.get("ttl", 10), prefix=etcd.get("prefix", "/gopherpipe/services/")
    )

if harness.get("standby"):
    print("standby", flush=True)
    sys.stdin.readline()
server = Server(*address.split(","), **options)
register_all_types(server, AllTypesImpl())
if os.path.exists(os.path.join(stub_dir, "e2e_streams_server.py")):
    from e2e_streams_server import register_streams  # type: ignore[import-not-found]
    from streams_impl import StreamsImpl

    register_streams(server, StreamsImpl())
if os.path.exists(os.path.join(stub_dir, "e2e_moretypes_server.py")):
    from e2e_moretypes_server import register_more_types  # type: ignore[import-not-found]
    from moretypes_impl import MoreTypesImpl

    register_more_types(server, MoreTypesImpl())
if os.path.exists(os.path.join(stub_dir, "e2e_retries_server.py")):
    from e2e_retries_server import register_retries  # type: ignore[import-not-found]
    from retries_impl import RetriesImpl

    register_retries(server, RetriesImpl())


def stats() -> dict[str, Any]:
    # gc.get_objects() lists what is still allocated, garbage in cycles included,
    # and collects nothing.
    alive = sum(1 for o in gc.get_objects() if type(o) is server_module._Connection)
    return {
        "alive_connections": alive,
        "open_connections": len(server._connections),
        "gc_enabled": gc.isenabled(),
    }


if harness.get("debug"):
    server.add_service(
        ServiceDef(
            "Debug",
            {"stats": MethodDef(MethodKind.UNARY, lambda args: (), stats, lambda result: result)},
        )
    )
server.start()
print(" ".join(server.addresses), flush=True)


def stop_when_parent_goes() -> None:
    # The test holds our stdin; EOF means it is done (or died): never linger.
    sys.stdin.read()
    server.stop(1.0)


threading.Thread(target=stop_when_parent_goes, daemon=True).start()
server.serve_forever()
if "registry" in options:
    options["registry"].close()
