/* semcached entry point (placeholder until the server lands). */
#include "common/config.h"
#include <stdio.h>
int main(int argc, char **argv)
{
    sc_config c;
    sc_config_defaults(&c);
    char err[512];
    int help;
    if (sc_config_parse_args(&c, argc, argv, &help, err, sizeof err)) {
        fprintf(stderr, "semcached: %s\n", err);
        return 2;
    }
    sc_config_free(&c);
    return 0;
}
