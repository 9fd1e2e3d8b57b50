#!/usr/bin/python3
"""A slixmpp client driven line by line, for multi-client integration tests.

slixmpp does the real work of a client (TLS, SASL, binding, answering
pings and disco); the Go test tells it what to send and reads everything it
receives. Protocol, one JSON object per line:
  stdin:  {"op": "send", "xml": "<message .../>"}   send raw XML
          {"op": "presence"}                         initial presence built by slixmpp
          {"op": "close"}                            close the stream cleanly
          {"op": "abort"}                            cut the TCP connection
  stdout: {"event": "session_start", "jid": "..."}
          {"event": "stanza", "xml": "..."}          every stanza received
          {"event": "failed", "why": "..."}
          {"event": "disconnected"}
"""
import argparse
import asyncio
import json
import logging
import os
import ssl
import sys

import slixmpp


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", default="")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--direct-tls", action="store_true")
    p.add_argument("--cafile", required=True)
    p.add_argument("--debug", action="store_true")
    p.add_argument("--sm", action="store_true", help="use stream management (XEP-0198) with resumption")
    p.add_argument("--notify", action="append", default=[],
                   help="PEP node to get notifications for (+notify in entity capabilities)")
    a = p.parse_args()
    if a.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    # See login.py: slixmpp 1.8's tls-unique channel binding does not exist
    # in TLS 1.3, so it runs here as a client without channel binding.
    ssl.SSLObject.get_channel_binding = lambda self, cb_type="tls-unique": None
    ssl.SSLSocket.get_channel_binding = lambda self, cb_type="tls-unique": None

    xmpp = slixmpp.ClientXMPP(a.jid, a.password, sasl_mech="SCRAM-SHA-256")
    xmpp.ssl_context = ssl.create_default_context(cafile=a.cafile)
    # The test decides every answer to a subscription request.
    xmpp.auto_authorize = None
    xmpp.auto_subscribe = False
    xmpp.register_plugin("xep_0030")
    xmpp.register_plugin("xep_0199")
    if a.notify:
        xmpp.register_plugin("xep_0115")
        xmpp.register_plugin("xep_0163")
        for node in a.notify:
            xmpp["xep_0163"].add_interest(node)
    if a.sm:
        xmpp.register_plugin("xep_0198")
        xmpp.add_event_handler("sm_enabled", lambda _: emit(event="sm_enabled"))
        xmpp.add_event_handler("session_resumed", lambda _: emit(event="session_resumed"))

    loop = asyncio.get_event_loop()
    done = loop.create_future()

    def incoming(stanza):
        emit(event="stanza", xml=str(stanza))
        return stanza

    xmpp.add_filter("in", incoming)
    xmpp.add_event_handler("session_start", lambda _: emit(event="session_start", jid=str(xmpp.boundjid)))
    xmpp.add_event_handler("failed_all_auth", lambda _: (emit(event="failed", why="auth"), xmpp.disconnect()))
    xmpp.add_event_handler("connection_failed", lambda e: (emit(event="failed", why=str(e)), done.done() or done.set_result(True)))

    def on_disconnected(_):
        emit(event="disconnected")
        # With stream management the test may reconnect and resume; it
        # ends the agent with "quit" (or by closing stdin).
        if not a.sm and not done.done():
            done.set_result(True)

    xmpp.add_event_handler("disconnected", on_disconnected)

    pending = b""

    def on_stdin():
        # Read what is there and run every complete line: a buffered
        # readline() would keep further lines hidden from the event loop.
        nonlocal pending
        data = os.read(sys.stdin.fileno(), 65536)
        if not data:
            loop.remove_reader(sys.stdin.fileno())
            xmpp.disconnect()
            if a.sm and not done.done():
                loop.call_later(2, lambda: done.done() or done.set_result(True))
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            run(json.loads(line))

    def run(cmd):
        op = cmd.get("op")
        if op == "send":
            xmpp.send_raw(cmd["xml"])
        elif op == "presence":
            # Through slixmpp, so that its plugins (caps) add their parts.
            xmpp.send_presence()
        elif op == "close":
            xmpp.disconnect()
        elif op == "abort":
            if xmpp.transport is not None:
                xmpp.transport.abort()
        elif op == "reconnect":
            xmpp.connect(address=(a.host, a.port), use_ssl=a.direct_tls, force_starttls=not a.direct_tls)
        elif op == "quit":
            if not done.done():
                done.set_result(True)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    xmpp.connect(address=(a.host, a.port), use_ssl=a.direct_tls, force_starttls=not a.direct_tls)
    try:
        loop.run_until_complete(asyncio.wait_for(done, 300))
    except asyncio.TimeoutError:
        emit(event="failed", why="agent ran for 300 s")


if __name__ == "__main__":
    main()
