/* tapegrad: train, apply and evaluate logistic-regression models on CSV files. */
#include <string.h>

#include "cli.h"

static const char USAGE[] =
    "usage: tapegrad <command> [options]\n"
    "\n"
    "commands:\n"
    "  train     fit a logistic regression on a CSV file and write the model (JSON)\n"
    "  predict   print one prediction per row of a CSV file\n"
    "  eval      print log loss, accuracy, precision, recall, F1, ROC AUC and the\n"
    "            confusion matrix of a model on a labelled CSV file\n"
    "  version   print the version, the kernel family and the matrix-product backend\n"
    "            (also `tapegrad --version`)\n"
    "\n"
    "`tapegrad <command> --help` (or `tapegrad help <command>`) lists a command's options;\n"
    "`--` ends the options, for a DATA file whose name starts with '-'. Try `tapegrad train`\n"
    "on the bundled (synthetic) placement data set.\n"
    "\n"
    "exit status: 0 success, 1 bad input or a failed read/write (one-line message on stderr,\n"
    "no model file written), 2 bad command-line usage.\n";

/* args are what follows the command's name. */
static int version(int argc, char **args)
{
    if (argc > 0 && (strcmp(args[0], "--help") == 0 || strcmp(args[0], "-h") == 0)) {
        puts("usage: tapegrad version\n\nPrints the version, the kernel family in use and the "
             "matrix-product backend.");
        return cli_stdout_done("version") ? EXIT_OK : EXIT_FAIL;
    }
    if (argc > 0) {
        cli_error("version", "takes no arguments, got '%s'", args[0]);
        return EXIT_USAGE;
    }
    printf("tapegrad %s (kernels: %s, matrix products: %s)\n", tg_version_string(), tg_isa(),
           tg_matmul_backend());
    return cli_stdout_done("version") ? EXIT_OK : EXIT_FAIL;
}

static int run_command(const char *cmd, int argc, char **args)
{
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc, args);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc, args);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc, args);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return version(argc, args);
    fprintf(stderr,
            "tapegrad: unknown command '%s' (commands: train, predict, eval, version; see "
            "tapegrad --help)\n",
            cmd);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    cli_hold_std_fds();
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2) { /* tapegrad help train: that command's own help */
            char flag[] = "--help";
            char *args[] = {flag, NULL};
            return run_command(argv[2], 1, args);
        }
        fputs(USAGE, stdout);
        return cli_stdout_done("help") ? EXIT_OK : EXIT_FAIL;
    }
    return run_command(cmd, argc - 2, argv + 2);
}
