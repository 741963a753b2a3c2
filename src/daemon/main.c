/* main.c - crosstalkd: start-up, signals, shutdown */
int main(void) { return 0; }
