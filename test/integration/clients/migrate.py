#!/usr/bin/python3
"""Fill an account with data, or read it back, with slixmpp; print JSON.

"fill" runs against the old server (Prosody) before a migration: a roster
item with a name and groups, a vCard, private XML, and a message sent (so
both archives hold it). "check" runs against parley afterwards and reports
what the account finds. Exit code 0 means the script ran.
"""
import argparse
import asyncio
import json
import ssl

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

NS_PREFS = "urn:example:migration"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["fill", "check"])
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mech", default=None)
    p.add_argument("--cafile", default=None)
    p.add_argument("--contact", default="")
    p.add_argument("--timeout", type=float, default=30)
    a = p.parse_args()
    # slixmpp 1.8 knows only tls-unique, which TLS 1.3 does not define, and
    # would claim channel binding it cannot do; behave like a client
    # without channel binding (gs2 flag 'n'), as login.py does.
    ssl.SSLObject.get_channel_binding = lambda self, cb_type="tls-unique": None
    ssl.SSLSocket.get_channel_binding = lambda self, cb_type="tls-unique": None

    result = {"authenticated": False, "mech": None, "error": None}
    xmpp = slixmpp.ClientXMPP(a.jid, a.password, sasl_mech=a.mech)
    for plugin in ["xep_0030", "xep_0054", "xep_0049", "xep_0313", "xep_0059"]:
        xmpp.register_plugin(plugin)
    if a.cafile:
        xmpp.ssl_context = ssl.create_default_context(cafile=a.cafile)
    done = asyncio.get_event_loop().create_future()

    async def fill():
        await xmpp.get_roster()
        await xmpp.update_roster(a.contact, name="Bob Builder", groups=["Friends", "Work"])
        vc = xmpp["xep_0054"].make_vcard()
        vc["FN"] = "Alice Liddell"
        vc["NICKNAME"] = "alice"
        await xmpp["xep_0054"].publish_vcard(vc)
        iq = xmpp.make_iq_set()
        q = slixmpp.ET.Element("{jabber:iq:private}query")
        prefs = slixmpp.ET.SubElement(q, "{%s}prefs" % NS_PREFS)
        colour = slixmpp.ET.SubElement(prefs, "{%s}colour" % NS_PREFS)
        colour.text = "blue"
        iq.append(q)
        await iq.send(timeout=10)
        xmpp.send_message(mto=a.contact, mbody="down the rabbit hole", mtype="chat")
        # A round trip after the message, so the server has archived it.
        await xmpp["xep_0030"].get_info(jid=xmpp.boundjid.domain, timeout=10)

    async def check():
        roster = await xmpp.get_roster()
        items = {}
        for j in xmpp.client_roster:
            it = xmpp.client_roster[j]
            items[j] = {"name": it["name"], "groups": sorted(it["groups"]), "subscription": it["subscription"]}
        result["roster"] = items
        vc = await xmpp["xep_0054"].get_vcard(jid=xmpp.boundjid.bare, cached=False, timeout=10)
        result["vcard_fn"] = vc["vcard_temp"]["FN"]
        iq = xmpp.make_iq_get()
        q = slixmpp.ET.Element("{jabber:iq:private}query")
        slixmpp.ET.SubElement(q, "{%s}prefs" % NS_PREFS)
        iq.append(q)
        res = await iq.send(timeout=10)
        colour = res.xml.find(".//{%s}colour" % NS_PREFS)
        result["private_colour"] = colour.text if colour is not None else None
        bodies = []
        async for rsm in xmpp["xep_0313"].retrieve(jid=None, iterator=True, rsm={"max": 50}):
            for msg in rsm["mam"]["results"]:
                fwd = msg["mam_result"]["forwarded"]
                bodies.append({"body": fwd["stanza"]["body"], "to": str(fwd["stanza"]["to"].bare),
                               "stamp": str(fwd["delay"]["stamp"])})
        result["archive"] = bodies

    async def on_session_start(_):
        result["authenticated"] = True
        mech = getattr(xmpp["feature_mechanisms"], "mech", None)
        result["mech"] = getattr(mech, "name", None)
        try:
            await (fill() if a.mode == "fill" else check())
        except (IqError, IqTimeout) as e:
            result["error"] = "%s: %r" % (type(e).__name__, getattr(e, "iq", e))
        except Exception as e:  # noqa: BLE001 - report whatever went wrong
            result["error"] = repr(e)
        xmpp.disconnect()

    xmpp.add_event_handler("session_start", on_session_start)
    xmpp.add_event_handler("failed_all_auth", lambda _: (result.__setitem__("error", "authentication failed"), xmpp.disconnect()))
    xmpp.add_event_handler("disconnected", lambda _: done.done() or done.set_result(True))
    xmpp.add_event_handler("connection_failed", lambda e: (result.__setitem__("error", "connection failed: %s" % e), done.done() or done.set_result(True)))
    xmpp.connect(address=("127.0.0.1", a.port), force_starttls=bool(a.cafile))
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(done, a.timeout))
    except asyncio.TimeoutError:
        result["error"] = result["error"] or "timeout"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
