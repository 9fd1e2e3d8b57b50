#!/usr/bin/python3
"""Drive a room with slixmpp's typed MUC and data form handling, print one
JSON line.

The owner configures the room the way a client with a settings dialog
does: it reads each field of the configuration form by its type, picks
list values among the options offered and sets booleans as booleans,
then submits the form. Then the subject is changed (XEP-0045 §8.1): an
occupant present sees the change, and an occupant joining later is told
the subject when it joins.
"""
import argparse
import asyncio
import json
import logging
import ssl
import sys

import slixmpp


def client(a, jid):
    x = slixmpp.ClientXMPP(jid, a.password, sasl_mech="SCRAM-SHA-256")
    x.ssl_context = ssl.create_default_context(cafile=a.cafile)
    for p in ("xep_0030", "xep_0004", "xep_0045", "xep_0199"):
        x.register_plugin(p)
    return x


async def start(x, a):
    started = asyncio.get_event_loop().create_future()
    x.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    x.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(RuntimeError("auth failed")))
    x.connect((a.host, a.port))
    await asyncio.wait_for(started, a.timeout)
    x.send_presence()


def configure(form, maxusers):
    """Fill the form as a typed settings dialog would; returns what it chose
    or raises ValueError when a field cannot be filled by its type."""
    chosen = {}
    fields = form.get_fields()
    for var, field in fields.items():
        typ = field["type"]
        if var == "FORM_TYPE":
            continue
        if typ in ("list-single", "list-multi"):
            options = [o["value"] for o in field["options"]]
            if not options:
                raise ValueError("%s is a %s without options" % (var, typ))
            current = field.get_value(convert=False)
            if typ == "list-single" and current not in options:
                raise ValueError("%s: current value %r is not among its options %r" % (var, current, options))
    # The owner's choices, each through the field's own type.
    for var, value in (("muc#roomconfig_persistentroom", True),
                       ("muc#roomconfig_changesubject", True),
                       ("muc#roomconfig_publicroom", False)):
        if fields[var]["type"] != "boolean":
            raise ValueError("%s is a %s, not a boolean" % (var, fields[var]["type"]))
        fields[var]["value"] = value
        chosen[var] = value
    mu = fields["muc#roomconfig_maxusers"]
    if mu["type"] != "list-single":
        raise ValueError("muc#roomconfig_maxusers is a %s, not a list-single" % mu["type"])
    options = [o["value"] for o in mu["options"]]
    if maxusers not in options:
        raise ValueError("maxusers %s not offered: %r" % (maxusers, options))
    mu["value"] = maxusers
    chosen["muc#roomconfig_maxusers"] = maxusers
    return chosen


async def run(a, result):
    room = slixmpp.JID(a.room)
    owner, member, late = client(a, a.owner), client(a, a.member), client(a, a.late)
    try:
        for x in (owner, member):
            await start(x, a)
        muc = owner.plugin["xep_0045"]
        await muc.join_muc_wait(room, "Owner", timeout=a.timeout)
        form = await muc.get_room_config(room, timeout=a.timeout)
        try:
            result["chosen"] = configure(form, a.maxusers)
        except ValueError as e:
            result["form_rejected"] = str(e)
            return
        await muc.set_room_config(room, form, timeout=a.timeout)
        form = await muc.get_room_config(room, timeout=a.timeout)
        result["maxusers_after"] = form.get_fields()["muc#roomconfig_maxusers"].get_value(convert=False)
        result["persistent_after"] = form.get_fields()["muc#roomconfig_persistentroom"]["value"]

        await member.plugin["xep_0045"].join_muc_wait(room, "Member", timeout=a.timeout)
        seen = asyncio.get_event_loop().create_future()

        def on_subject(msg):
            if msg["subject"] == a.subject and not seen.done():
                seen.set_result(str(msg["from"]))
        member.add_event_handler("muc::%s::groupchat_subject" % room, on_subject)
        muc.set_subject(room, a.subject)
        result["member_saw_subject_from"] = await asyncio.wait_for(seen, a.timeout)

        await start(late, a)
        _, subject, _, _ = await late.plugin["xep_0045"].join_muc_wait(room, "Late", timeout=a.timeout)
        result["late_subject"] = subject["subject"]
        result["late_subject_from"] = str(subject["from"])
    finally:
        for x in (owner, member, late):
            x.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--owner", required=True)
    p.add_argument("--member", required=True)
    p.add_argument("--late", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--subject", default="Typed topic")
    p.add_argument("--maxusers", default="20")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    if a.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    # See login.py: no tls-unique in TLS 1.3.
    ssl.SSLObject.get_channel_binding = lambda self, cb_type="tls-unique": None
    ssl.SSLSocket.get_channel_binding = lambda self, cb_type="tls-unique": None
    result = {}
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(run(a, result), a.timeout * 4))
    except Exception as e:  # reported, not raised: the Go test says what failed
        result["failure"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
