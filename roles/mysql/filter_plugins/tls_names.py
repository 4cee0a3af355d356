"""A certificate's subject alternative names from the names and addresses a server is reached by."""
import ipaddress


def flaskstack_subject_alt_name(name):
    """'IP:<address>' for an IPv4 or IPv6 address, else 'DNS:<name>': a client
    checking an address matches only an IP entry, and a name only a DNS one."""
    try:
        return f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        return f"DNS:{name}"


class FilterModule:
    def filters(self):
        return {"flaskstack_subject_alt_name": flaskstack_subject_alt_name}
