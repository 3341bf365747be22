"""Privacy: the offline guard (``guard``), sealing at rest (``seal``, ``keys``, ``tree``, ``atomic``) and
access control for the server (``access``). Nothing is imported here, so each part stays light."""
