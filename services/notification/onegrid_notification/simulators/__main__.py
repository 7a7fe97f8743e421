"""`python -m onegrid_notification.simulators sms|push|mail --port N [--smtp-port M]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from onegrid_common.simulators.base import serve


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="onegrid-notification-simulators")
    parser.add_argument("kind", choices=["sms", "push", "mail"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="HTTP port")
    parser.add_argument("--smtp-port", type=int, default=8225, help="SMTP port (mail only)")
    args = parser.parse_args(argv)
    if args.kind == "sms":
        from onegrid_notification.simulators import sms

        serve(sms.create_app(), host=args.host, port=args.port)
    elif args.kind == "push":
        from onegrid_notification.simulators import push

        serve(push.create_app(), host=args.host, port=args.port)
    else:
        from onegrid_notification.simulators import mail

        controller, store = mail.start_smtp(args.host, args.smtp_port)
        try:
            serve(mail.create_app(store), host=args.host, port=args.port)
        finally:
            controller.stop()


if __name__ == "__main__":
    main()
