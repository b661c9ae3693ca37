"""Chat from asyncio: client.py's options and behaviour, with `async for`.

    python client_aio.py ADDRESS --name ann [--room General] [--say TEXT]... [--reply TEXT]
                         [--expect N] [--timeout SECONDS]

Joins the room, says each --say line, prints everything said in the room, answers the
first message from someone else with --reply, and leaves after hearing --expect
messages from others (or after --timeout). Then prints the room's history. Either
server (server.py or server_aio.py) will do; certificates for tls:// and wss:// come
from the environment as for client.py.
"""

from __future__ import annotations

import argparse
import asyncio

from service_aio import ChatServiceAsyncClient

from gopherpipe_runtime.aio import Chan, run
from gopherpipe_runtime.transport.tls import context_from_env


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("--name", required=True)
    parser.add_argument("--room", default="General")
    parser.add_argument("--say", action="append", default=[])
    parser.add_argument("--reply")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    tls = context_from_env(server_side=False)
    async with ChatServiceAsyncClient.dial(args.address, tls=tls) as client:
        chat = client.with_options(metadata={"user": args.name})
        incoming: Chan[str] = Chan()
        output = chat.join_room(args.room, incoming)
        # Leave after the timeout even if the others never speak.
        give_up = asyncio.get_running_loop().call_later(args.timeout, incoming.close)
        welcome = await anext(output)  # the server announces us: from now on we hear the room
        print(f"{args.name} joined {args.room} ({welcome.text})", flush=True)
        for text in args.say:
            await incoming.send(text)
        if args.expect == 0:
            incoming.close()
        heard = 0
        async for message in output:
            print(f"  [{args.name} hears] {message.sender}: {message.text}", flush=True)
            if message.sender in (args.name, "System"):
                continue
            heard += 1
            if heard == 1 and args.reply:
                await incoming.send(args.reply)
            if heard >= args.expect:
                incoming.close()  # half-closes our side; the server then ends the stream
        give_up.cancel()
        recent = await chat.history(args.room, limit=10)
        print(f"{args.name}: the room's history has {len(recent)} messages", flush=True)


if __name__ == "__main__":
    run(main())
