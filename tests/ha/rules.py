"""Home Assistant's rules for MQTT discovery payloads, transcribed as data.

Source: Home Assistant Core **2025.12.5** (the ``homeassistant`` wheel on PyPI; read, not
installed: it needs Python 3.13 and this project runs 3.11). Each table names the file and the
object it was transcribed from. Only data is transcribed; the checks in ``validate.py`` are
written for these tests and say which HA rule each one stands for.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Optional

HA_VERSION = "2025.12.5"

#: homeassistant/components/sensor/const.py: ``DEVICE_CLASS_UNITS`` (the unit enums of
#: homeassistant/const.py resolved to their values). number/const.py's table is identical in
#: this version, so it also serves ``number`` entities.
DEVICE_CLASS_UNITS: Dict[str, FrozenSet[Optional[str]]] = {
    'absolute_humidity': frozenset({'g/m³', 'mg/m³'}),
    'apparent_power': frozenset({'VA', 'kVA', 'mVA'}),
    'aqi': frozenset({None}),
    'area': frozenset({'ac', 'cm²', 'ft²', 'ha', 'in²', 'km²', 'mi²', 'mm²', 'm²', 'yd²'}),
    'atmospheric_pressure': frozenset({'Pa', 'bar', 'cbar', 'hPa', 'inHg', 'inH₂O', 'kPa',
        'mPa', 'mbar', 'mmHg', 'psi'}),
    'battery': frozenset({'%'}),
    'blood_glucose_concentration': frozenset({'mg/dL', 'mmol/L'}),
    'carbon_dioxide': frozenset({'ppm'}),
    'carbon_monoxide': frozenset({'mg/m³', 'ppm', 'μg/m³'}),
    'conductivity': frozenset({'S/cm', 'mS/cm', 'μS/cm'}),
    'current': frozenset({'A', 'mA'}),
    'data_rate': frozenset({'B/s', 'GB/s', 'Gbit/s', 'GiB/s', 'KiB/s', 'MB/s', 'Mbit/s',
        'MiB/s', 'bit/s', 'kB/s', 'kbit/s'}),
    'data_size': frozenset({'B', 'EB', 'EiB', 'GB', 'Gbit', 'GiB', 'KiB', 'MB', 'Mbit', 'MiB',
        'PB', 'PiB', 'TB', 'TiB', 'YB', 'YiB', 'ZB', 'ZiB', 'bit', 'kB', 'kbit'}),
    'distance': frozenset({'cm', 'ft', 'in', 'km', 'm', 'mi', 'mm', 'nmi', 'yd'}),
    'duration': frozenset({'d', 'h', 'min', 'ms', 's', 'μs'}),
    'energy': frozenset({'GJ', 'GWh', 'Gcal', 'J', 'MJ', 'MWh', 'Mcal', 'TWh', 'Wh', 'cal',
        'kJ', 'kWh', 'kcal', 'mWh'}),
    'energy_distance': frozenset({'Wh/km', 'kWh/100km', 'km/kWh', 'mi/kWh'}),
    'energy_storage': frozenset({'GJ', 'GWh', 'Gcal', 'J', 'MJ', 'MWh', 'Mcal', 'TWh', 'Wh',
        'cal', 'kJ', 'kWh', 'kcal', 'mWh'}),
    'frequency': frozenset({'GHz', 'Hz', 'MHz', 'kHz'}),
    'gas': frozenset({'CCF', 'L', 'MCF', 'ft³', 'm³'}),
    'humidity': frozenset({'%'}),
    'illuminance': frozenset({'lx'}),
    'irradiance': frozenset({'BTU/(h⋅ft²)', 'W/m²'}),
    'moisture': frozenset({'%'}),
    'nitrogen_dioxide': frozenset({'μg/m³'}),
    'nitrogen_monoxide': frozenset({'μg/m³'}),
    'nitrous_oxide': frozenset({'μg/m³'}),
    'ozone': frozenset({'μg/m³'}),
    'ph': frozenset({None}),
    'pm1': frozenset({'μg/m³'}),
    'pm10': frozenset({'μg/m³'}),
    'pm25': frozenset({'μg/m³'}),
    'pm4': frozenset({'μg/m³'}),
    'power': frozenset({'GW', 'MW', 'TW', 'W', 'kW', 'mW'}),
    'power_factor': frozenset({'%', None}),
    'precipitation': frozenset({'cm', 'in', 'mm'}),
    'precipitation_intensity': frozenset({'in/d', 'in/h', 'mm/d', 'mm/h'}),
    'pressure': frozenset({'Pa', 'bar', 'cbar', 'hPa', 'inHg', 'inH₂O', 'kPa', 'mPa', 'mbar',
        'mmHg', 'psi'}),
    'reactive_energy': frozenset({'kvarh', 'varh'}),
    'reactive_power': frozenset({'kvar', 'mvar', 'var'}),
    'signal_strength': frozenset({'dB', 'dBm'}),
    'sound_pressure': frozenset({'dB', 'dBA'}),
    'speed': frozenset({'Beaufort', 'ft/s', 'in/d', 'in/h', 'in/s', 'km/h', 'kn', 'm/min',
        'm/s', 'mm/d', 'mm/h', 'mm/s', 'mph'}),
    'sulphur_dioxide': frozenset({'μg/m³'}),
    'temperature': frozenset({'K', '°C', '°F'}),
    'temperature_delta': frozenset({'K', '°C', '°F'}),
    'volatile_organic_compounds': frozenset({'mg/m³', 'μg/m³'}),
    'volatile_organic_compounds_parts': frozenset({'ppb', 'ppm'}),
    'voltage': frozenset({'MV', 'V', 'kV', 'mV', 'μV'}),
    'volume': frozenset({'CCF', 'L', 'MCF', 'fl. oz.', 'ft³', 'gal', 'mL', 'm³'}),
    'volume_flow_rate': frozenset({'L/h', 'L/min', 'L/s', 'ft³/min', 'gal/h', 'gal/min',
        'mL/s', 'm³/h', 'm³/min', 'm³/s'}),
    'volume_storage': frozenset({'CCF', 'L', 'MCF', 'fl. oz.', 'ft³', 'gal', 'mL', 'm³'}),
    'water': frozenset({'CCF', 'L', 'MCF', 'ft³', 'gal', 'm³'}),
    'weight': frozenset({'g', 'kg', 'lb', 'mg', 'oz', 'st', 'μg'}),
    'wind_direction': frozenset({'°'}),
    'wind_speed': frozenset({'Beaufort', 'ft/s', 'in/s', 'km/h', 'kn', 'm/min', 'm/s', 'mm/s',
        'mph'}),
}

#: homeassistant/components/sensor/const.py: ``DEVICE_CLASS_STATE_CLASSES`` (an empty set:
#: no state class at all).
DEVICE_CLASS_STATE_CLASSES: Dict[str, FrozenSet[str]] = {
    'absolute_humidity': frozenset({'measurement'}),
    'apparent_power': frozenset({'measurement'}),
    'aqi': frozenset({'measurement'}),
    'area': frozenset({'measurement', 'measurement_angle', 'total', 'total_increasing'}),
    'atmospheric_pressure': frozenset({'measurement'}),
    'battery': frozenset({'measurement'}),
    'blood_glucose_concentration': frozenset({'measurement'}),
    'carbon_dioxide': frozenset({'measurement'}),
    'carbon_monoxide': frozenset({'measurement'}),
    'conductivity': frozenset({'measurement'}),
    'current': frozenset({'measurement'}),
    'data_rate': frozenset({'measurement'}),
    'data_size': frozenset({'measurement', 'measurement_angle', 'total', 'total_increasing'}),
    'date': frozenset({}),
    'distance': frozenset({'measurement', 'measurement_angle', 'total', 'total_increasing'}),
    'duration': frozenset({'measurement', 'measurement_angle', 'total', 'total_increasing'}),
    'energy': frozenset({'total', 'total_increasing'}),
    'energy_distance': frozenset({'measurement'}),
    'energy_storage': frozenset({'measurement'}),
    'enum': frozenset({}),
    'frequency': frozenset({'measurement'}),
    'gas': frozenset({'total', 'total_increasing'}),
    'humidity': frozenset({'measurement'}),
    'illuminance': frozenset({'measurement'}),
    'irradiance': frozenset({'measurement'}),
    'moisture': frozenset({'measurement'}),
    'monetary': frozenset({'total'}),
    'nitrogen_dioxide': frozenset({'measurement'}),
    'nitrogen_monoxide': frozenset({'measurement'}),
    'nitrous_oxide': frozenset({'measurement'}),
    'ozone': frozenset({'measurement'}),
    'ph': frozenset({'measurement'}),
    'pm1': frozenset({'measurement'}),
    'pm10': frozenset({'measurement'}),
    'pm25': frozenset({'measurement'}),
    'pm4': frozenset({'measurement'}),
    'power': frozenset({'measurement'}),
    'power_factor': frozenset({'measurement'}),
    'precipitation': frozenset({'measurement', 'measurement_angle', 'total',
        'total_increasing'}),
    'precipitation_intensity': frozenset({'measurement'}),
    'pressure': frozenset({'measurement'}),
    'reactive_energy': frozenset({'total', 'total_increasing'}),
    'reactive_power': frozenset({'measurement'}),
    'signal_strength': frozenset({'measurement'}),
    'sound_pressure': frozenset({'measurement'}),
    'speed': frozenset({'measurement'}),
    'sulphur_dioxide': frozenset({'measurement'}),
    'temperature': frozenset({'measurement'}),
    'temperature_delta': frozenset({'measurement'}),
    'timestamp': frozenset({}),
    'volatile_organic_compounds': frozenset({'measurement'}),
    'volatile_organic_compounds_parts': frozenset({'measurement'}),
    'voltage': frozenset({'measurement'}),
    'volume': frozenset({'total', 'total_increasing'}),
    'volume_flow_rate': frozenset({'measurement'}),
    'volume_storage': frozenset({'measurement'}),
    'water': frozenset({'total', 'total_increasing'}),
    'weight': frozenset({'measurement', 'total', 'total_increasing'}),
    'wind_direction': frozenset({'measurement_angle'}),
    'wind_speed': frozenset({'measurement'}),
}

#: homeassistant/components/sensor/const.py: ``SensorStateClass``; ``STATE_CLASS_UNITS``
#: (measurement_angle only with degrees).
STATE_CLASSES = frozenset({"measurement", "measurement_angle", "total", "total_increasing"})
STATE_CLASS_UNITS: Dict[str, FrozenSet[Optional[str]]] = {"measurement_angle": frozenset({"°"})}

#: homeassistant/components/sensor/const.py: ``NON_NUMERIC_DEVICE_CLASSES``.
# homeassistant/components/mqtt/const.py PAYLOAD_NONE: a sensor whose rendered payload is this
# text becomes unknown (mqtt/sensor.py _update_state) instead of being checked as a value
PAYLOAD_NONE = "None"

NON_NUMERIC_DEVICE_CLASSES = frozenset({"date", "enum", "timestamp"})

#: homeassistant/components/sensor/const.py: ``SensorDeviceClass`` (every member).
SENSOR_DEVICE_CLASSES = frozenset(DEVICE_CLASS_STATE_CLASSES)

#: homeassistant/components/number/const.py: ``NumberDeviceClass``.
NUMBER_DEVICE_CLASSES = frozenset({
        'absolute_humidity', 'apparent_power', 'aqi', 'area', 'atmospheric_pressure', 'battery',
    'blood_glucose_concentration', 'carbon_dioxide', 'carbon_monoxide', 'conductivity',
    'current', 'data_rate', 'data_size', 'distance', 'duration', 'energy', 'energy_distance',
    'energy_storage', 'frequency', 'gas', 'humidity', 'illuminance', 'irradiance', 'moisture',
    'monetary', 'nitrogen_dioxide', 'nitrogen_monoxide', 'nitrous_oxide', 'ozone', 'ph',
    'power', 'power_factor', 'precipitation', 'precipitation_intensity', 'pressure',
    'reactive_energy', 'reactive_power', 'signal_strength', 'sound_pressure', 'speed',
    'sulphur_dioxide', 'temperature', 'temperature_delta', 'volatile_organic_compounds',
    'volatile_organic_compounds_parts', 'voltage', 'volume', 'volume_flow_rate',
    'volume_storage', 'water', 'weight', 'wind_direction', 'wind_speed',
})

#: homeassistant/components/binary_sensor/__init__.py: ``BinarySensorDeviceClass``.
BINARY_SENSOR_DEVICE_CLASSES = frozenset({
        'battery', 'battery_charging', 'carbon_monoxide', 'cold', 'connectivity', 'door',
    'garage_door', 'gas', 'heat', 'light', 'lock', 'moisture', 'motion', 'moving', 'occupancy',
    'opening', 'plug', 'power', 'presence', 'problem', 'running', 'safety', 'smoke', 'sound',
    'tamper', 'update', 'vibration', 'window',
})

#: homeassistant/components/button/__init__.py: ``ButtonDeviceClass``;
#: homeassistant/components/switch/__init__.py: ``SwitchDeviceClass``.
BUTTON_DEVICE_CLASSES = frozenset({"identify", "restart", "update"})
SWITCH_DEVICE_CLASSES = frozenset({"outlet", "switch"})

#: homeassistant/const.py: ``EntityCategory``. homeassistant/components/sensor/__init__.py and
#: binary_sensor/__init__.py refuse to add an entity whose category is ``config``.
ENTITY_CATEGORIES = frozenset({"config", "diagnostic"})
NO_CONFIG_CATEGORY = frozenset({"sensor", "binary_sensor"})

#: homeassistant/components/climate/const.py: ``HVACMode``; climate's ``precision`` takes
#: PRECISION_TENTHS/HALVES/WHOLE (homeassistant/const.py); ``temperature_unit`` is C or F
#: (helpers/config_validation.py: temperature_unit).
HVAC_MODES = frozenset({"off", "heat", "cool", "heat_cool", "auto", "dry", "fan_only"})
CLIMATE_PRECISIONS = frozenset({0.1, 0.5, 1.0})
TEMPERATURE_UNITS = frozenset({"C", "F"})

#: homeassistant/components/number/const.py: ``NumberMode``.
NUMBER_MODES = frozenset({"auto", "box", "slider"})

#: homeassistant/components/mqtt/schemas.py: ``MQTT_ENTITY_COMMON_SCHEMA`` (with the
#: availability schemas it extends) - options every entity platform takes.
COMMON_KEYS = frozenset({
        'availability', 'availability_mode', 'availability_template', 'availability_topic',
    'default_entity_id', 'device', 'enabled_by_default', 'entity_category', 'entity_picture',
    'icon', 'json_attributes_template', 'json_attributes_topic', 'object_id', 'origin',
    'payload_available', 'payload_not_available', 'unique_id',
})

#: homeassistant/components/mqtt/schemas.py: ``MQTT_ENTITY_DEVICE_INFO_SCHEMA``.
DEVICE_KEYS = frozenset({
        'configuration_url', 'connections', 'hw_version', 'identifiers', 'manufacturer', 'model',
    'model_id', 'name', 'serial_number', 'suggested_area', 'sw_version', 'via_device',
})

#: homeassistant/components/mqtt/schemas.py: ``MQTT_ORIGIN_INFO_SCHEMA`` (name required).
ORIGIN_KEYS = frozenset({
        'name', 'support_url', 'sw_version',
})

#: Per platform, the options of its discovery schema beyond the common ones, from
#: homeassistant/components/mqtt/<platform>.py (``PLATFORM_SCHEMA_MODERN`` /
#: ``_PLATFORM_SCHEMA_BASE``) and mqtt/config.py (``MQTT_BASE_SCHEMA``, ``MQTT_RO_SCHEMA``,
#: ``MQTT_RW_SCHEMA``). Discovery drops options it does not know (``extra=REMOVE_EXTRA``): an
#: unknown option is silently lost, so the tests treat it as an error.
PLATFORM_KEYS: Dict[str, FrozenSet[str]] = {
    'sensor': frozenset({
        'device_class', 'encoding', 'expire_after', 'force_update', 'last_reset_value_template',
        'name', 'options', 'qos', 'state_class', 'state_topic', 'suggested_display_precision',
        'unit_of_measurement', 'value_template',
    }),
    'binary_sensor': frozenset({
        'device_class', 'encoding', 'expire_after', 'force_update', 'name', 'off_delay',
        'payload_off', 'payload_on', 'qos', 'state_topic', 'value_template',
    }),
    'number': frozenset({
        'command_template', 'command_topic', 'device_class', 'encoding', 'max', 'min', 'mode',
        'name', 'optimistic', 'payload_reset', 'qos', 'retain', 'state_topic', 'step',
        'unit_of_measurement', 'value_template',
    }),
    'select': frozenset({
        'command_template', 'command_topic', 'encoding', 'name', 'optimistic', 'options', 'qos',
        'retain', 'state_topic', 'value_template',
    }),
    'switch': frozenset({
        'command_template', 'command_topic', 'device_class', 'encoding', 'name', 'optimistic',
        'payload_off', 'payload_on', 'qos', 'retain', 'state_off', 'state_on', 'state_topic',
        'value_template',
    }),
    'button': frozenset({
        'command_template', 'command_topic', 'device_class', 'encoding', 'name', 'payload_press',
        'qos', 'retain',
    }),
    'climate': frozenset({
        'action_template', 'action_topic', 'current_humidity_template', 'current_humidity_topic',
        'current_temperature_template', 'current_temperature_topic', 'encoding',
        'fan_mode_command_template', 'fan_mode_command_topic', 'fan_mode_state_template',
        'fan_mode_state_topic', 'fan_modes', 'initial', 'max_humidity', 'max_temp', 'min_humidity',
        'min_temp', 'mode_command_template', 'mode_command_topic', 'mode_state_template',
        'mode_state_topic', 'modes', 'name', 'optimistic', 'payload_off', 'payload_on',
        'power_command_template', 'power_command_topic', 'precision',
        'preset_mode_command_template', 'preset_mode_command_topic', 'preset_mode_state_topic',
        'preset_mode_value_template', 'preset_modes', 'qos', 'retain',
        'swing_horizontal_mode_command_template', 'swing_horizontal_mode_command_topic',
        'swing_horizontal_mode_state_template', 'swing_horizontal_mode_state_topic',
        'swing_horizontal_modes', 'swing_mode_command_template', 'swing_mode_command_topic',
        'swing_mode_state_template', 'swing_mode_state_topic', 'swing_modes',
        'target_humidity_command_template', 'target_humidity_command_topic',
        'target_humidity_state_template', 'target_humidity_state_topic', 'temp_step',
        'temperature_command_template', 'temperature_command_topic',
        'temperature_high_command_template', 'temperature_high_command_topic',
        'temperature_high_state_template', 'temperature_high_state_topic',
        'temperature_low_command_template', 'temperature_low_command_topic',
        'temperature_low_state_template', 'temperature_low_state_topic',
        'temperature_state_template', 'temperature_state_topic', 'temperature_unit',
        'value_template',
    }),
}

#: The options each platform requires (``vol.Required``).
REQUIRED_KEYS: Dict[str, FrozenSet[str]] = {
    'sensor': frozenset({'state_topic'}),
    'binary_sensor': frozenset({'state_topic'}),
    'number': frozenset({'command_topic'}),
    'select': frozenset({'command_topic', 'options'}),
    'switch': frozenset({'command_topic'}),
    'button': frozenset({'command_topic'}),
    'climate': frozenset(),
}
