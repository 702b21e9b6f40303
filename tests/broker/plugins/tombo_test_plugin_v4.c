/* tombo_test_plugin_v4.c -- a Mosquitto 1.6-style auth plugin (interface version 4, only its
 * version function): tests/broker/test_plugin.py checks tombo refuses it naming the version. */
int mosquitto_auth_plugin_version(void);

int mosquitto_auth_plugin_version(void)
{
    return 4;
}
