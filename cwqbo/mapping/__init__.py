"""Pure mapping of a ConnectWise invoice to a QuickBooks document; see document.py for where each rule lives."""
