"""The mail server's side, as a student reads it: aiosmtpd calls ``handle_DATA`` once a client has sent a message.

A real server keeps its sender waiting (round trips, TLS, a login, virus scanning, sometimes a deliberate pause);
this one waits ``delay`` seconds, keeps the message in its mailbox and answers 250. The sandbox's sink adds its
faults (rejections, dropped connections, lost replies) around this class, never inside it.
"""

import asyncio


class MailboxHandler:
    def __init__(self, mailbox, delay):
        self.mailbox = mailbox
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        self.mailbox.store(envelope)
        return "250 Message accepted for delivery"
