"""Protocol adapters: pure, exact re-implementations of lending-protocol math."""
