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
    "  version   print the version and the kernel family in use\n"
    "\n"
    "`tapegrad <command> --help` lists a command's options. Try `tapegrad train` on the\n"
    "bundled (synthetic) placement data set.\n"
    "\n"
    "exit status: 0 success, 1 bad input or a failed read/write (one-line message on stderr,\n"
    "no model file written), 2 bad command-line usage.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc - 2, argv + 2);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tapegrad %s (kernels: %s, matrix products: %s)\n", tg_version_string(), tg_isa(),
               tg_matmul_backend());
        return cli_stdout_done("version") ? EXIT_OK : EXIT_FAIL;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(USAGE, stdout);
        return cli_stdout_done("help") ? EXIT_OK : EXIT_FAIL;
    }
    fprintf(stderr, "tapegrad: unknown command '%s'\n%s", cmd, USAGE);
    return EXIT_USAGE;
}
