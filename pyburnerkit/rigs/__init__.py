"""Simulated set-ups that span device families (at the level of ``families.py``).

A family's simulator stands for one device (:class:`~pyburnerkit.de1.sim.DE1Sim`,
:class:`~pyburnerkit.scale.sim.SkaleSim`); a rig here puts devices of several families into one
simulated world, which no family package may do, since families never import each other
(ARCHITECTURE section 10). Rigs may import family packages, ``ble`` and ``_core``; nothing
below them imports a rig.

* :mod:`.espresso`: :class:`~pyburnerkit.rigs.espresso.DE1Rig`, a DE1 pouring into a Skale II
  on one bench (what ``pyburnerkit sim de1`` runs).
"""
