/* `tapegrad train --distributed`: the MPI set-up around a command, and errors printed once.
 *
 * Under mpirun every rank runs the same command line. Errors that every rank meets alike (a bad
 * option, a missing label column) are printed by rank 0 alone; an error only one rank meets (a
 * bad row in its part of the file) by that rank, found with tg_dist_failed_rank. Every rank
 * then exits with the same status. */
#include <string.h>

#include "cli.h"

bool cli_dist_wanted(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--distributed") == 0)
            return true;
    return false;
}

int cli_dist_begin(const char *cmd)
{
    if (!tg_dist_available()) {
        cli_error(cmd, "--distributed: this tapegrad was built without MPI (configure with "
                       "-DTAPEGRAD_MPI=ON; on Debian: apt-get install libopenmpi-dev openmpi-bin)");
        return EXIT_USAGE;
    }
    if (tg_dist_init() != TG_OK) {
        cli_lib_error(cmd, "--distributed: ", NULL);
        return EXIT_FAIL;
    }
    cli_mute_errors(tg_dist_rank() != 0);
    return EXIT_OK;
}

int cli_dist_end(int rc)
{
    /* The worst exit status of any rank, on every rank: [any usage error, any failure]. */
    double v[2] = {rc == EXIT_USAGE, rc != EXIT_OK && rc != EXIT_USAGE};
    if (tg_dist_allreduce_sum(v, 2) == TG_OK)
        rc = v[0] > 0 ? EXIT_USAGE : v[1] > 0 ? EXIT_FAIL : EXIT_OK;
    tg_dist_finalize();
    return rc;
}

void cli_dist_error(const char *cmd, const char *context, const char *hint)
{
    if (tg_dist_failed_rank() != tg_dist_rank())
        return;
    bool was = cli_mute_errors(false);
    cli_lib_error(cmd, context, hint);
    cli_mute_errors(was);
}

int64_t cli_dist_sum(int64_t v)
{
    double d = (double)v; /* exact below 2^53 */
    tg_dist_allreduce_sum(&d, 1);
    return (int64_t)d;
}
