#!/usr/bin/python3
"""Log in to parley with slixmpp, run a few checks, print one JSON line.

Used by the Go integration tests: it is a real third-party client, so what
it sees is what users' clients see. Exit code 0 means the script ran; the
JSON says what happened.
"""
import argparse
import asyncio
import json
import logging
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", default="")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--direct-tls", action="store_true")
    p.add_argument("--mech", default=None)
    p.add_argument("--mechs", default=None,
                   help="comma-separated mechanisms to try in turn on one connection after failures, as stock slixmpp does")
    p.add_argument("--cafile", default=None)
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--debug", action="store_true")
    p.add_argument("--no-channel-binding", action="store_true",
                   help="behave like a client without channel binding (gs2 flag 'n')")
    a = p.parse_args()
    if a.no_channel_binding:
        # slixmpp 1.8 knows only tls-unique, which TLS 1.3 does not define
        # (RFC 9266), and so sends the gs2 flag 'y' with non-PLUS SCRAM;
        # a server that offers channel binding must refuse that (RFC 5802
        # section 6). A client without channel binding sends 'n' instead.
        ssl.SSLObject.get_channel_binding = lambda self, cb_type="tls-unique": None
        ssl.SSLSocket.get_channel_binding = lambda self, cb_type="tls-unique": None
    if a.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)

    result = {"connected": False, "authenticated": False, "bound_jid": None,
              "mech": None, "ping": None, "disco_features": None,
              "unknown_iq_error": None, "failure": None, "tls_version": None}
    xmpp = slixmpp.ClientXMPP(a.jid, a.password, sasl_mech=a.mech)
    if a.mechs:
        xmpp["feature_mechanisms"].use_mechs = a.mechs.split(",")
    xmpp.register_plugin("xep_0030")
    xmpp.register_plugin("xep_0199")
    if a.cafile:
        ctx = ssl.create_default_context(cafile=a.cafile)
        xmpp.ssl_context = ctx
    done = asyncio.get_event_loop().create_future()

    def finish():
        if not done.done():
            done.set_result(True)

    async def on_session_start(_):
        result["authenticated"] = True
        result["bound_jid"] = str(xmpp.boundjid)
        mech = getattr(xmpp["feature_mechanisms"], "mech", None)
        result["mech"] = getattr(mech, "name", None)
        try:
            sock = xmpp.socket
            result["tls_version"] = sock.version() if hasattr(sock, "version") else None
        except Exception:
            pass
        try:
            rtt = await xmpp["xep_0199"].ping(jid=xmpp.boundjid.domain, timeout=5)
            result["ping"] = "ok"
        except Exception as e:  # noqa: BLE001 - report whatever went wrong
            result["ping"] = "error: %r" % (e,)
        try:
            info = await xmpp["xep_0030"].get_info(jid=xmpp.boundjid.domain, timeout=5)
            result["disco_features"] = sorted(info["disco_info"]["features"])
        except (IqError, IqTimeout) as e:
            result["disco_features"] = "error: %r" % (e,)
        # An IQ with a payload nobody handles must get service-unavailable.
        iq = xmpp.make_iq_get(ito=xmpp.boundjid.domain)
        iq.append(slixmpp.ET.Element("{urn:example:unknown}query"))
        try:
            await iq.send(timeout=5)
            result["unknown_iq_error"] = "no error"
        except IqError as e:
            result["unknown_iq_error"] = e.iq["error"]["condition"]
        except IqTimeout:
            result["unknown_iq_error"] = "timeout"
        xmpp.disconnect()

    def on_failure(stanza):
        result["failure"] = stanza["condition"] if hasattr(stanza, "__getitem__") else str(stanza)

    xmpp.add_event_handler("connected", lambda _: result.__setitem__("connected", True))
    xmpp.add_event_handler("session_start", on_session_start)
    xmpp.add_event_handler("failed_auth", on_failure)
    xmpp.add_event_handler("failed_all_auth", lambda _: (result.__setitem__("failure", result["failure"] or "all mechanisms failed"), xmpp.disconnect()))
    xmpp.add_event_handler("disconnected", lambda _: finish())
    xmpp.add_event_handler("connection_failed", lambda e: (result.__setitem__("failure", "connection failed: %s" % e), finish()))

    xmpp.connect(address=(a.host, a.port), use_ssl=a.direct_tls, force_starttls=not a.direct_tls)
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(done, a.timeout))
    except asyncio.TimeoutError:
        result["failure"] = result["failure"] or "timeout"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
