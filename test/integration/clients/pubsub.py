#!/usr/bin/python3
"""Drive parley's pubsub service and PEP with slixmpp's own plugins
(xep_0060, xep_0004), as a real client does: alice owns nodes, bob
subscribes. Each step records what the clients saw; one JSON object is
printed at the end: {"steps": {name: value}, "error": null or text}.
"""
import argparse
import asyncio
import json
import ssl
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

ATOM = "http://www.w3.org/2005/Atom"
AUTH = "http://jabber.org/protocol/pubsub#subscribe_authorization"


def entry(title):
    e = ET.Element("{%s}entry" % ATOM)
    ET.SubElement(e, "{%s}title" % ATOM).text = title
    ET.SubElement(e, "{%s}id" % ATOM).text = "tag:localhost," + title
    return e


def client(jid, a):
    x = slixmpp.ClientXMPP(jid, "pw", sasl_mech="SCRAM-SHA-256")
    for p in ("xep_0030", "xep_0004", "xep_0060"):
        x.register_plugin(p)
    x.ssl_context = ssl.create_default_context(cafile=a.cafile)
    return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--service", default="pubsub.localhost")
    a = p.parse_args()
    ssl.SSLObject.get_channel_binding = lambda self, cb_type="tls-unique": None
    ssl.SSLSocket.get_channel_binding = lambda self, cb_type="tls-unique": None

    loop = asyncio.get_event_loop()
    alice, bob = client("alice@localhost/desk", a), client("bob@localhost/desk", a)
    steps = {}
    out = {"steps": steps, "error": None}
    events = {"alice": asyncio.Queue(), "bob": asyncio.Queue()}
    started = {"alice": loop.create_future(), "bob": loop.create_future()}

    for name, x in (("alice", alice), ("bob", bob)):
        def on_start(_, name=name, x=x):
            x.send_presence()
            started[name].done() or started[name].set_result(True)
        x.add_event_handler("session_start", on_start)
        for kind in ("pubsub_publish", "pubsub_retract", "pubsub_subscription", "pubsub_delete"):
            x.add_event_handler(kind, lambda msg, name=name, kind=kind: events[name].put_nowait((kind, msg)))
        # xep_0004 raises message_xform for a message carrying a form.
        x.add_event_handler("message_xform", lambda msg, name=name: events[name].put_nowait(("message", msg)))
        x.add_event_handler("failed_auth", lambda _, name=name: out.__setitem__("error", "auth " + name))

    async def next_event(who, kinds):
        while True:
            kind, msg = await asyncio.wait_for(events[who].get(), 10)
            if kind in kinds:
                return kind, msg

    S = a.service

    async def run():
        await asyncio.wait_for(asyncio.gather(*started.values()), 20)
        ps_a, ps_b = alice["xep_0060"], bob["xep_0060"]

        # Create with a configuration, then change it.
        form = alice["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#node_config")
        form.add_field(var="pubsub#access_model", value="open")
        form.add_field(var="pubsub#max_items", value="5")
        await ps_a.create_node(S, "news", config=form)
        cfg = await ps_a.get_node_config(S, "news")
        f = cfg["pubsub_owner"]["configure"]["form"]
        steps["config_max_items"] = f.get_fields()["pubsub#max_items"]["value"]
        submit = alice["xep_0004"].make_form(ftype="submit")
        submit.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#node_config")
        submit.add_field(var="pubsub#title", value="Daily news")
        await ps_a.set_node_config(S, "news", submit)
        cfg = await ps_a.get_node_config(S, "news")
        steps["title_after_configure"] = cfg["pubsub_owner"]["configure"]["form"].get_fields()["pubsub#title"]["value"]

        # bob subscribes and gets what alice publishes, then its retraction.
        sub = await ps_b.subscribe(S, "news")
        steps["subscribe"] = sub["pubsub"]["subscription"]["subscription"]
        await ps_a.publish(S, "news", id="first", payload=entry("Hello"))
        kind, msg = await next_event("bob", ("pubsub_publish",))
        item = msg["pubsub_event"]["items"]["item"]
        steps["notified_item"] = item["id"]
        steps["notified_title"] = item["payload"].find("{%s}title" % ATOM).text
        await ps_a.retract(S, "news", "first", notify=True)
        kind, msg = await next_event("bob", ("pubsub_retract",))
        steps["notified_retract"] = msg["pubsub_event"]["items"]["retract"]["id"]

        # Affiliations: bob becomes a publisher and may publish.
        try:
            await ps_b.publish(S, "news", id="bobs", payload=entry("Bob"))
            steps["publish_before_affiliation"] = "result"
        except IqError as e:
            steps["publish_before_affiliation"] = e.iq["error"]["condition"]
        await ps_a.modify_affiliations(S, "news", affiliations=[("bob@localhost", "publisher")])
        affs = await ps_a.get_node_affiliations(S, "news")
        steps["affiliations"] = sorted("%s=%s" % (x["jid"], x["affiliation"]) for x in affs["pubsub_owner"]["affiliations"])
        await ps_b.publish(S, "news", id="bobs", payload=entry("Bob"))
        steps["publish_as_publisher"] = "result"
        subs = await ps_a.get_node_subscriptions(S, "news")
        steps["subscriptions"] = sorted("%s=%s" % (x["jid"], x["subscription"]) for x in subs["pubsub_owner"]["subscriptions"])

        # Authorize: bob's subscription waits for alice's approval form.
        form = alice["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#node_config")
        form.add_field(var="pubsub#access_model", value="authorize")
        await ps_a.create_node(S, "club", config=form)
        await ps_a.publish(S, "club", id="rules", payload=entry("Club rules"))
        sub = await ps_b.subscribe(S, "club")
        steps["authorize_subscribe"] = sub["pubsub"]["subscription"]["subscription"]
        kind, msg = await next_event("alice", ("message",))
        fields = msg["form"].get_fields()
        one = lambda v: v[0] if isinstance(v, list) else v  # slixmpp reads a hidden FORM_TYPE as a list
        steps["authorize_form"] = [one(fields["FORM_TYPE"]["value"]), fields["pubsub#subscriber_jid"]["value"]]
        answer = alice["xep_0004"].make_form(ftype="submit")
        for var in ("FORM_TYPE", "pubsub#subid", "pubsub#node", "pubsub#subscriber_jid"):
            answer.add_field(var=var, value=fields[var]["value"])
        answer.add_field(var="pubsub#allow", ftype="boolean", value=True)
        reply = alice.make_message(mto=S)
        reply.append(answer)
        reply.send()
        kind, msg = await next_event("bob", ("pubsub_subscription",))
        steps["authorize_outcome"] = msg["pubsub_event"]["subscription"]["subscription"]
        items = await ps_b.get_items(S, "club")
        steps["authorize_items"] = [i["id"] for i in items["pubsub"]["items"]]

        # A microblog (XEP-0277): alice posts on her PEP node, bob, who
        # is no contact of hers, reads it and comments on the service.
        await ps_a.publish(None, "urn:xmpp:microblog:0", id="post1", payload=entry("My first post"))
        items = await ps_b.get_items("alice@localhost", "urn:xmpp:microblog:0")
        steps["microblog_read"] = [i["payload"].find("{%s}title" % ATOM).text for i in items["pubsub"]["items"]]
        await ps_b.publish(S, "urn:xmpp:microblog:0:comments/post1", id="c1", payload=entry("Nice post"))
        items = await ps_a.get_items(S, "urn:xmpp:microblog:0:comments/post1")
        steps["comments_read"] = [i["payload"].find("{%s}title" % ATOM).text for i in items["pubsub"]["items"]]

        # Delete: the subscriber is told.
        await ps_a.delete_node(S, "news")
        kind, msg = await next_event("bob", ("pubsub_delete",))
        steps["notified_delete"] = msg["pubsub_event"]["delete"]["node"]

    async def guarded():
        try:
            await run()
        except IqError as e:
            out["error"] = "iq error %s: %s" % (e.iq["error"]["condition"], e.iq["error"]["text"])
        except (IqTimeout, asyncio.TimeoutError):
            out["error"] = "timeout"
        except Exception as e:  # a script bug must show, not look like success
            out["error"] = "exception: %r" % e
        for x in (alice, bob):
            x.disconnect()

    for x in (alice, bob):
        x.connect(address=(a.host, a.port), force_starttls=True)
    try:
        loop.run_until_complete(asyncio.wait_for(guarded(), 60))
    except asyncio.TimeoutError:
        out["error"] = out["error"] or "timeout"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
