"""Chat from the command line.

    python client.py ADDRESS --name ann [--room General] [--say TEXT]... [--reply TEXT]
                     [--expect N] [--timeout SECONDS]

Joins the room, says each --say line, prints everything said in the room, answers
the first message from someone else with --reply, and leaves after hearing
--expect messages from others (or after --timeout). Then prints the room's history.

Any address works: tcp://, unix://, tls://, ws://, wss://. For tls:// and wss:// the
certificates come from the environment (`transport.tls.context_from_env`):
GOPHERPIPE_TLS_CERT and GOPHERPIPE_TLS_KEY, and GOPHERPIPE_TLS_CA for the CA whose
client certificates the server requires (mTLS) or, in a client, the CA it trusts.
"""

from __future__ import annotations

import argparse
import threading

from service_client import ChatServiceClient

from gopherpipe_runtime import Chan
from gopherpipe_runtime.transport.tls import context_from_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("--name", required=True)
    parser.add_argument("--room", default="General")
    parser.add_argument("--say", action="append", default=[])
    parser.add_argument("--reply")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    with ChatServiceClient.dial(args.address, tls=context_from_env(server_side=False)) as client:
        chat = client.with_options(metadata={"user": args.name})
        incoming: Chan[str] = Chan()
        output = chat.join_room(args.room, incoming)
        # Leave after the timeout even if the others never speak.
        give_up = threading.Timer(args.timeout, incoming.close)
        give_up.daemon = True
        give_up.start()
        welcome = output.recv()  # the server announces us: from now on we hear the room
        print(f"{args.name} joined {args.room} ({welcome.text})", flush=True)
        for text in args.say:
            incoming.send(text)
        if args.expect == 0:
            incoming.close()
        heard = 0
        for message in output:
            print(f"  [{args.name} hears] {message.sender}: {message.text}", flush=True)
            if message.sender in (args.name, "System"):
                continue
            heard += 1
            if heard == 1 and args.reply:
                incoming.send(args.reply)
            if heard >= args.expect:
                incoming.close()  # half-closes our side; the server then ends the stream
        give_up.cancel()
        recent = chat.history(args.room, limit=10)
        print(f"{args.name}: the room's history has {len(recent)} messages", flush=True)


if __name__ == "__main__":
    main()
