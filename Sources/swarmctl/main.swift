import ArgumentParser
print("todo")
