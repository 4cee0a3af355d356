"""Unit tests import the collection's plugins by their Python names
(ansible_collections.flaskstack.stack.plugins...). ansible-test units puts the
collection on the path; in a checkout, `make unit` finds it through
collections/ansible_collections/flaskstack/stack, the link to this checkout that
ansible.cfg's collections_path names."""
import importlib.util
import pathlib
import sys

CHECKOUT_COLLECTIONS = pathlib.Path(__file__).resolve().parents[2] / "collections"

# ansible-test units (or an installed copy) already has it on the path.
if importlib.util.find_spec("ansible_collections.flaskstack") is None:
    sys.path.insert(0, str(CHECKOUT_COLLECTIONS))
