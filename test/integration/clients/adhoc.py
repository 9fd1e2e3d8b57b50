#!/usr/bin/python3
"""Run an ad-hoc command (XEP-0050) with slixmpp's own xep_0050 plugin,
as a real client does: list the server's commands, execute one, fill in
the form it shows and complete it. Prints one JSON line:
  {"items": [nodes listed], "status": "completed"|..., "note": "...",
   "values": {var: [values of the result form]}, "error": condition or null}
"""
import argparse
import asyncio
import json
import ssl

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--server", default="localhost")
    p.add_argument("--node", required=True)
    p.add_argument("--field", action="append", default=[], help="var=value, repeatable")
    a = p.parse_args()
    ssl.SSLObject.get_channel_binding = lambda self, cb_type="tls-unique": None
    ssl.SSLSocket.get_channel_binding = lambda self, cb_type="tls-unique": None

    result = {"items": None, "status": None, "note": None, "values": {}, "error": None}
    # A client without channel binding (slixmpp knows only tls-unique,
    # which TLS 1.3 lacks): plain SCRAM-SHA-256.
    xmpp = slixmpp.ClientXMPP(a.jid, a.password, sasl_mech="SCRAM-SHA-256")
    for plugin in ("xep_0030", "xep_0004", "xep_0050"):
        xmpp.register_plugin(plugin)
    xmpp.ssl_context = ssl.create_default_context(cafile=a.cafile)
    done = asyncio.get_event_loop().create_future()

    async def run(_):
        try:
            items = await xmpp["xep_0050"].get_commands(a.server)
            result["items"] = [i[1] for i in items["disco_items"]["items"]]
            iq = await xmpp["xep_0050"].send_command(a.server, a.node)
            cmd = iq["command"]
            if cmd["status"] == "executing":
                form = cmd["form"]
                values = {}
                for f in a.field:
                    var, _, val = f.partition("=")
                    values.setdefault(var, []).append(val)
                submit = xmpp["xep_0004"].make_form(ftype="submit")
                for var, field in form.get_fields().items():
                    if var in values:
                        v = values[var]
                        submit.add_field(var=var, ftype=field["type"],
                                         value=v if field["type"].endswith("-multi") else v[0])
                    elif var == "FORM_TYPE":
                        submit.add_field(var=var, ftype="hidden", value=field["value"])
                iq = await xmpp["xep_0050"].send_command(a.server, a.node, action="complete",
                                                          payload=submit, sessionid=cmd["sessionid"])
                cmd = iq["command"]
            result["status"] = cmd["status"]
            result["note"] = cmd["notes"][0][1] if cmd["notes"] else None
            if cmd["form"] is not None and cmd["form"].get_fields():
                for var, field in cmd["form"].get_fields().items():
                    v = field["value"]
                    result["values"][var] = v if isinstance(v, list) else [v]
        except IqError as e:
            result["error"] = e.iq["error"]["condition"]
        except IqTimeout:
            result["error"] = "timeout"
        except Exception as e:  # a script bug must show, not look like success
            result["error"] = "exception: %r" % e
        xmpp.disconnect()

    xmpp.add_event_handler("session_start", lambda e: asyncio.ensure_future(run(e)))
    xmpp.add_event_handler("failed_auth", lambda _: (result.__setitem__("error", "auth"), xmpp.disconnect()))
    xmpp.add_event_handler("connection_failed", lambda e: (result.__setitem__("error", "connection failed: %s" % e), done.done() or done.set_result(True)))
    xmpp.add_event_handler("disconnected", lambda _: done.done() or done.set_result(True))
    xmpp.connect(address=(a.host, a.port), force_starttls=True)
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(done, 30))
    except asyncio.TimeoutError:
        result["error"] = result["error"] or "timeout"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
