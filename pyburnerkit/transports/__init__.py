"""Links shared by every family that speaks one kind of wire protocol.

:mod:`~pyburnerkit.transports.modbus` is the Modbus TCP client link (pymodbus' synchronous
client, made strict about garbled replies) and :mod:`~pyburnerkit.transports.modbus_sim` the
Modbus TCP server a family's simulator serves its registers with. They know registers, unit
ids and function codes, never a device: a Modbus family builds its session on the link and its
simulator on the server, and keeps its register map to itself.

Importing this package imports no optional dependency: pymodbus is imported when a link is
opened or a server started, and its absence is then a
:class:`~pyburnerkit.errors.BackendUnavailableError` that names the extra the family passed.
"""

__all__ = ["modbus", "modbus_sim"]
